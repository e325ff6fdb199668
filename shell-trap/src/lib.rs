//! shell-trap: the Marathon task command. Starts (or restores) the job's container or process,
//! bounds it by the task's CPUs, reports start and end to the supervisor, and on SIGTERM
//! checkpoints it (CRIU where it works, application-assisted otherwise) within the kill grace
//! period so a restart to a new size loses no work.
//!
//! This crate is filled in by the shell-trap work.
