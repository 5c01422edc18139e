//! Stores from before the month files: their months move from sled trees into files.

use super::{index, segment, Record, Registro, RegistroError, OLD_MONTH_TREE};

impl Registro {
    /// Stores made before the month files kept each month in a sled tree
    /// `registro-YYYY-MM` (`r` + seq → record, `c` + message-id → receipt): move them
    /// into the files, oldest first, then drop the tree. Re-run safely after a crash.
    pub(super) fn migrate_sled_months(&self, db: &sled::Db) -> Result<(), RegistroError> {
        let mut trees: Vec<String> = db
            .tree_names()
            .iter()
            .filter_map(|n| std::str::from_utf8(n).ok())
            .filter_map(|n| n.strip_prefix(OLD_MONTH_TREE))
            .map(str::to_string)
            .collect();
        trees.sort();
        for month in trees {
            let name = format!("{OLD_MONTH_TREE}{month}");
            let tree = db.open_tree(&name)?;
            let written = segment::months(&self.root)
                .pop()
                .map(|m| segment::last_record(&self.root, &m))
                .transpose()?
                .flatten()
                .map_or(0, |r| r.seq);
            let mut appender = None;
            for item in tree.scan_prefix(b"r") {
                let (_, value) = item?;
                let record: Record = serde_json::from_slice(&value)
                    .map_err(|e| RegistroError::Corrupt(format!("{name}: {e}")))?;
                if record.seq <= written {
                    continue;
                }
                let id = record.event.message_id.clone().unwrap_or_default();
                let receipt = match (record.receipt, id.is_empty()) {
                    (true, false) => {
                        let mut key = vec![b'c'];
                        key.extend_from_slice(
                            index::strip_angles(&id).to_ascii_lowercase().as_bytes(),
                        );
                        tree.get(key)?
                    }
                    _ => None,
                };
                if appender.is_none() {
                    appender = Some(segment::Appender::open(&self.root, &month)?);
                }
                if let Some(a) = appender.as_mut() {
                    a.push(&record, receipt.as_deref().map(|b| (id.as_str(), b)))?;
                }
            }
            if let Some(a) = appender {
                a.finish()?;
                index::compact(&self.root.join(&month))?;
            }
            db.drop_tree(name)?;
            tracing::info!(month, "registro: month moved from the store to its files");
        }
        Ok(())
    }
}
