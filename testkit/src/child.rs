//! A child process watched the way a test of a command-line program needs: started in its own
//! process group (as Marathon's executor starts a task, so a signal can go to the whole group),
//! its stdout and stderr read line by line as they come with the instant each line came,
//! waited for with a bound, and killed with its group when dropped.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::lock;

/// A line of output and when it was read.
#[derive(Debug, Clone)]
pub struct Line {
    /// When it was read.
    pub at: Instant,
    /// The line, without its end.
    pub text: String,
}

type Lines = Arc<Mutex<Vec<Line>>>;

/// A running child, its output captured.
#[derive(Debug)]
pub struct Watched {
    /// The process.
    pub child: Child,
    /// When it was started.
    pub spawned: Instant,
    what: String,
    out: Lines,
    err: Lines,
    readers: Vec<JoinHandle<()>>,
}

fn pump(r: impl std::io::Read + Send + 'static, into: Lines) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(text) = line else { break };
            lock(&into).push(Line {
                at: Instant::now(),
                text,
            });
        }
    })
}

impl Watched {
    /// Starts `cmd` (named `what` in failures) in its own process group, stdin empty, stdout
    /// and stderr captured.
    #[must_use]
    pub fn spawn(what: &str, cmd: &mut Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let spawned = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
        let out = Lines::default();
        let err = Lines::default();
        let readers = vec![
            pump(child.stdout.take().expect("piped stdout"), Arc::clone(&out)),
            pump(child.stderr.take().expect("piped stderr"), Arc::clone(&err)),
        ];
        Self {
            child,
            spawned,
            what: what.to_owned(),
            out,
            err,
            readers,
        }
    }

    /// Its process id (also its process group's).
    #[must_use]
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("a pid fits an i32"))
    }

    /// Sends `sig` to its whole process group, as Marathon's executor does.
    pub fn signal(&self, sig: Signal) {
        let _ = killpg(self.pid(), sig);
    }

    /// The first stdout line containing `needle`, waiting up to `timeout`.
    #[must_use]
    pub fn wait_stdout(&self, needle: &str, timeout: Duration) -> Option<Line> {
        wait_line(&self.out, needle, timeout)
    }

    /// The first stderr line containing `needle`, waiting up to `timeout`.
    #[must_use]
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> Option<Line> {
        wait_line(&self.err, needle, timeout)
    }

    /// Waits for the exit up to `timeout` and returns its status and when it came, once all
    /// of the output is read; after `timeout` it SIGKILLs the group (as Mesos would) and
    /// panics with the output.
    pub fn wait(&mut self, timeout: Duration) -> (ExitStatus, Instant) {
        let until = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("waitpid") {
                let at = Instant::now();
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return (st, at);
            }
            if Instant::now() > until {
                self.signal(Signal::SIGKILL);
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Its stdout so far, lines joined with `\n`.
    #[must_use]
    pub fn stdout(&self) -> String {
        join(&self.out)
    }

    /// Its stderr so far, lines joined with `\n`.
    #[must_use]
    pub fn stderr(&self) -> String {
        join(&self.err)
    }

    /// Its stdout lines so far.
    #[must_use]
    pub fn stdout_lines(&self) -> Vec<Line> {
        lock(&self.out).clone()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn join(lines: &Mutex<Vec<Line>>) -> String {
    lock(lines)
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_line(lines: &Mutex<Vec<Line>>, needle: &str, timeout: Duration) -> Option<Line> {
    crate::wait::blocking(timeout, Duration::from_millis(2), || {
        lock(lines)
            .iter()
            .find(|l| l.text.contains(needle))
            .cloned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_with_their_instant_and_the_group_is_signalled() {
        let mut sh = Watched::spawn(
            "sh",
            Command::new("sh").args(["-c", "echo one; echo two >&2; exec sleep 30"]),
        );
        let one = sh.wait_stdout("one", Duration::from_secs(10)).expect("one");
        assert!(one.at >= sh.spawned);
        assert!(sh.wait_stderr("two", Duration::from_secs(10)).is_some());
        assert!(sh.wait_stdout("three", Duration::from_millis(20)).is_none());
        sh.signal(Signal::SIGTERM);
        let (status, _) = sh.wait(Duration::from_secs(10));
        assert!(!status.success());
        assert_eq!(sh.stdout(), "one");
        assert_eq!(sh.stderr(), "two");
    }
}
