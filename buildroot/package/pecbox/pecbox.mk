################################################################################
#
# pecbox
#
################################################################################

# The source is the pecbox checkout that holds this BR2_EXTERNAL tree
# (buildroot/ is one of its top-level folders). To build a tagged release
# instead, replace these three lines with e.g.
#   PECBOX_VERSION = v0.1.0
#   PECBOX_SITE = <git URL of pecbox>
#   PECBOX_SITE_METHOD = git
# and drop PECBOX_CARGO_VENDOR: buildroot's download step then vendors the
# crates itself (support/download/cargo-post-process) and a pecbox.hash
# can pin the vendored tarball.
PECBOX_VERSION = local
PECBOX_SITE = $(BR2_EXTERNAL_PECBOX_PATH)/..
PECBOX_SITE_METHOD = local
PECBOX_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /image/out --exclude /pecbox-data \
	--exclude /buildroot --exclude /VENDOR
PECBOX_LICENSE = AGPL-3.0-or-later

# A local source skips buildroot's download step, and with it the cargo
# vendoring that cargo-package relies on (its build runs `cargo --offline`).
# Vendor here instead, once host-rustc is built; like the download step,
# this needs network access (the Rust package registry) unless $(BR_CARGO_HOME) already
# holds every crate of Cargo.lock.
define PECBOX_CARGO_VENDOR
	mkdir -p $(@D)/.cargo $(BR_CARGO_HOME)
	cd $(@D) && rm -rf VENDOR && \
		$(HOST_MAKE_ENV) CARGO_HOME=$(BR_CARGO_HOME) \
		flock $(BR_CARGO_HOME)/.br-lock \
		cargo vendor --locked VENDOR > $(@D)/.cargo/config.toml
endef
PECBOX_PRE_CONFIGURE_HOOKS += PECBOX_CARGO_VENDOR

define PECBOX_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/systemd/pecbox.service \
		$(TARGET_DIR)/usr/lib/systemd/system/pecbox.service
	$(INSTALL) -D -m 0644 $(@D)/systemd/pecbox.sysusers \
		$(TARGET_DIR)/usr/lib/sysusers.d/pecbox.conf
	$(INSTALL) -D -m 0644 $(PECBOX_PKGDIR)/50-pecbox.preset \
		$(TARGET_DIR)/usr/lib/systemd/system-preset/50-pecbox.preset
endef

$(eval $(cargo-package))
