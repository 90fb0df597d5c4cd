//! The library's top-level error, and whose fault it is.
//!
//! Every stage has its own error type (`DatasetError`, `PackErrors`,
//! `PlanError`, `ExecError`, `ListError`, `SynthError`); [`Error`] gathers
//! them for callers of [`crate::run::run`] and the other entry points, and
//! [`Error::blame`] says whether the user's input is at fault (exit code 2)
//! or strata or its environment (exit code 1). Front ends map that, never a
//! list of downcasts.

use crate::dataset::DatasetError;
use crate::exec::ExecError;
use crate::list::{ListError, RunDirError};
use crate::pack::PackErrors;
use crate::plan::PlanError;
use crate::synth::SynthError;

/// Whose fault an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// Bad input or usage: the message says what to fix. Exit code 2.
    Input,
    /// A failure of strata or of its environment (disk, memory). Exit code 1.
    Internal,
}

impl Blame {
    pub fn exit_code(self) -> u8 {
        match self {
            Blame::Input => 2,
            Blame::Internal => 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rule pack has errors; the diagnostics are the message.
    #[error("{0}")]
    Pack(#[from] PackErrors),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    List(#[from] ListError),
    #[error(transparent)]
    Synth(#[from] SynthError),
    /// A mistake in how strata was called (an option's value, a missing date).
    #[error("{0}")]
    Usage(String),
    /// Writing to the terminal or a pipe failed.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
    /// A failure that is not the input's fault.
    #[error("{0}")]
    Internal(String),
    /// Worked examples of a rule pack that do not hold (`strata test`).
    #[error("{failed} of {total} worked examples failed")]
    ExamplesFailed { failed: usize, total: usize },
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    /// Whether the user's input is at fault.
    pub fn blame(&self) -> Blame {
        match self {
            Error::Pack(_) | Error::Dataset(_) | Error::Plan(_) | Error::Usage(_) => Blame::Input,
            Error::Exec(ExecError::Dataset(_)) => Blame::Input,
            Error::Exec(ExecError::Eval(_)) => Blame::Internal,
            Error::List(ListError::Previous { .. }) => Blame::Input,
            Error::List(ListError::Locked { .. }) => Blame::Input,
            Error::List(ListError::RunDir(e)) => run_dir_blame(e),
            Error::List(ListError::Write { .. }) => Blame::Internal,
            Error::Synth(SynthError::InvalidConfig(_) | SynthError::OutputExists { .. }) => {
                Blame::Input
            }
            Error::Synth(_) | Error::Output(_) | Error::Internal(_) => Blame::Internal,
            // Exit 1, as a test runner does: the pack's evidence does not hold.
            Error::ExamplesFailed { .. } => Blame::Internal,
        }
    }

    /// Whether this is a closed pipe on stdout (`strata … | head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// An output folder that cannot be made because a path the user gave is
/// not a folder is the input's fault; anything else (disk full, no
/// permission mid-write) is the environment's.
fn run_dir_blame(e: &RunDirError) -> Blame {
    use std::io::ErrorKind;
    match e.source.kind() {
        ErrorKind::NotADirectory | ErrorKind::AlreadyExists | ErrorKind::PermissionDenied => {
            Blame::Input
        }
        _ => Blame::Internal,
    }
}
