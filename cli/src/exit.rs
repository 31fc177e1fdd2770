//! Exit statuses (documented in `--help` and the README).

/// What a run ended with, ordered from best to worst so that several hosts
/// combine with `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// 0: the pipeline completed without error records.
    Success,
    /// 1: the pipeline completed but wrote error records.
    HadErrors,
    /// 2: the pipeline failed (terminating error, stopped, timed out).
    Failed,
    /// 3: connection, authentication or transport failure.
    Connection,
    /// 65: `psrp clixml` input is not valid CLIXML.
    DataError,
    /// 64: usage or configuration error.
    Usage,
    /// 143: stopped by SIGTERM.
    Terminated,
    /// 130: stopped by SIGINT.
    Interrupted,
}

impl Status {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Status::Success => 0,
            Status::HadErrors => 1,
            Status::Failed => 2,
            Status::Connection => 3,
            Status::Usage => 64,
            Status::DataError => 65,
            Status::Interrupted => 130,
            Status::Terminated => 143,
        }
    }

    /// Word for the summary line.
    pub fn label(self) -> &'static str {
        match self {
            Status::Success => "ok",
            Status::HadErrors => "had errors",
            Status::Failed => "failed",
            Status::Connection => "connection failed",
            Status::Usage => "usage error",
            Status::DataError => "invalid data",
            Status::Interrupted => "interrupted",
            Status::Terminated => "terminated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Status;

    #[test]
    fn worst_status_wins() {
        let all = [Status::Success, Status::Connection, Status::HadErrors];
        assert_eq!(all.iter().max(), Some(&Status::Connection));
        assert_eq!(Status::HadErrors.max(Status::Failed).code(), 2);
    }
}
