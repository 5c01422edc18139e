include $(sort $(wildcard $(BR2_EXTERNAL_PECBOX_PATH)/package/*/*.mk))
