//! Per-job output cap: how much of each read is forwarded, and when truncation is marked.

/// Counts the output of one job (stdout and stderr together) against `log_bytes_max`.
#[derive(Debug)]
pub(crate) struct LogCap {
    log_bytes_max: u64,
    /// All bytes read.
    pub(crate) log_bytes: u64,
    /// Bytes forwarded as chunk events.
    pub(crate) forwarded: u64,
    /// Truncation has been marked.
    pub(crate) truncated: bool,
}

/// What to do with one read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Admit {
    /// Forward the first `forward` bytes of the read.
    pub(crate) forward: usize,
    /// Mark truncation now, with the bytes of this read that were dropped.
    pub(crate) mark_truncated: Option<u64>,
}

impl LogCap {
    pub(crate) fn new(log_bytes_max: u64) -> LogCap {
        LogCap {
            log_bytes_max,
            log_bytes: 0,
            forwarded: 0,
            truncated: false,
        }
    }

    /// Accounts a read of `n` bytes.
    pub(crate) fn admit(&mut self, n: usize) -> Admit {
        let n_bytes = n as u64;
        self.log_bytes = self.log_bytes.saturating_add(n_bytes);
        let room = self.log_bytes_max.saturating_sub(self.forwarded);
        let forward = n_bytes.min(room);
        self.forwarded += forward;
        let dropped = n_bytes - forward;
        let mark_truncated = if dropped > 0 && !self.truncated {
            self.truncated = true;
            Some(dropped)
        } else {
            None
        };
        Admit {
            // `forward <= n`, so it fits in usize.
            forward: forward as usize,
            mark_truncated,
        }
    }

    pub(crate) fn log_bytes_max(&self) -> u64 {
        self.log_bytes_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_up_to_the_cap_and_marks_once() {
        let mut cap = LogCap::new(10);
        assert_eq!(
            cap.admit(4),
            Admit {
                forward: 4,
                mark_truncated: None
            }
        );
        assert_eq!(
            cap.admit(8),
            Admit {
                forward: 6,
                mark_truncated: Some(2)
            }
        );
        assert_eq!(
            cap.admit(5),
            Admit {
                forward: 0,
                mark_truncated: None
            }
        );
        assert_eq!(
            (cap.log_bytes, cap.forwarded, cap.truncated),
            (17, 10, true)
        );
    }

    #[test]
    fn exactly_the_cap_is_not_truncated() {
        let mut cap = LogCap::new(10);
        assert_eq!(cap.admit(10).mark_truncated, None);
        assert!(!cap.truncated);
        assert_eq!(cap.admit(1).mark_truncated, Some(1));
    }

    #[test]
    fn zero_cap_drops_everything() {
        let mut cap = LogCap::new(0);
        assert_eq!(
            cap.admit(3),
            Admit {
                forward: 0,
                mark_truncated: Some(3)
            }
        );
        assert_eq!(cap.admit(0).mark_truncated, None);
    }
}
