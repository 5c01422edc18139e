//! The chain check of the live registro: every record's hash, link and sequence, every
//! checkpoint, and records cut from the end.

use serde::Serialize;

use super::chain::Chain;
use super::{check_checkpoint, pending_key, segment, writer, Registro, RegistroError};

/// The result of a chain check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub months: Vec<String>,
    pub checkpoints: u64,
    /// The first problem: sequence number and what is wrong.
    pub broken: Option<(u64, String)>,
    pub signer: Option<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

impl Registro {
    /// Checks the whole chain of the live registro and every checkpoint.
    pub fn verify(
        &self,
        anchors: &[Vec<u8>],
        progress: &dyn Fn(u64),
    ) -> Result<VerifyReport, RegistroError> {
        self.settle()?;
        let checkpoints = self.checkpoints()?;
        let months = self.months();
        let mut report = VerifyReport {
            months: months.clone(),
            ..VerifyReport::default()
        };
        // Where the chain starts: after the newest checkpoint older than what is left.
        let start = months.first().and_then(|first| {
            checkpoints
                .iter()
                .filter(|c| c.month < *first)
                .max_by(|a, b| a.month.cmp(&b.month))
        });
        let mut chain = Chain::new(start.map(|c| (c.last_seq, c.last_hash.clone())));
        for month in &months {
            let mut count = 0;
            for line in segment::Lines::open(&self.root, month)? {
                let record = match line? {
                    (_, _, Ok(r)) => r,
                    (_, _, Err(e)) => {
                        let seq = chain.expected_seq();
                        report.broken =
                            Some((seq, format!("record {seq} is unreadable in {month}: {e}")));
                        return Ok(report);
                    }
                };
                if let Err(broken) = chain.check(&record) {
                    report.broken = Some(broken);
                    return Ok(report);
                }
                count += 1;
                report.records += 1;
                if report.records.is_multiple_of(10_000) {
                    progress(report.records);
                }
            }
            if let Some(cp) = checkpoints.iter().find(|c| c.month == *month) {
                report.checkpoints += 1;
                if let Some(broken) = check_checkpoint(cp, &chain, count, anchors, &mut report) {
                    report.broken = Some(broken);
                    return Ok(report);
                }
            }
        }
        // Records cut from the end leave the files short of the head. Checked with
        // the files held still: steps go on committing while we walk.
        {
            let _w = writer();
            let head = self.head()?;
            self.settle_locked()?;
            let files_end = match segment::months(&self.root).last() {
                Some(m) => segment::last_record(&self.root, m)?.map_or(0, |r| r.seq),
                None => checkpoints.iter().map(|c| c.last_seq).max().unwrap_or(0),
            };
            let waiting = self.meta.contains_key(pending_key(b'p', files_end + 1))?;
            if let Some(head) = head.filter(|h| h.seq > files_end && !waiting) {
                let next = files_end + 1;
                report.broken = Some((
                    next,
                    format!(
                        "record {next} is missing (the files end at {files_end}, the registro at {})",
                        head.seq
                    ),
                ));
                return Ok(report);
            }
        }
        for cp in checkpoints.iter().filter(|c| !months.contains(&c.month)) {
            if let Err(e) = cp.verify(anchors) {
                report.broken = Some((cp.last_seq, e));
                return Ok(report);
            }
        }
        progress(report.records);
        Ok(report)
    }
}
