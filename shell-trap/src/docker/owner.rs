//! Who runs a container: the `qos.owner` label names the shell-trap process (boot, pid, start
//! time), so that a later shell-trap can tell a live owner from a dead one.

/// The `qos.owner` value of this process: `<boot id>:<pid>:<start time in ticks>`.
#[must_use]
pub fn owner_token() -> String {
    let pid = std::process::id();
    format!(
        "{}:{pid}:{}",
        boot_id(),
        start_time(pid).unwrap_or_default()
    )
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the parenthesised command name (which may contain spaces).
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the shell-trap named by a `qos.owner` value is still alive on this host.
#[must_use]
pub fn owner_alive(token: &str) -> bool {
    let mut it = token.split(':');
    let (Some(boot), Some(pid), Some(start)) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    boot == boot_id() && pid != std::process::id() && start_time(pid) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_tokens() {
        let me = owner_token();
        assert_eq!(me.split(':').count(), 3);
        // Our own token is not "another live shell-trap".
        assert!(!owner_alive(&me));
        let parent = std::os::unix::process::parent_id();
        let t = format!("{}:{parent}:{}", boot_id(), start_time(parent).unwrap());
        assert!(owner_alive(&t));
        assert!(!owner_alive(&format!("{}:{parent}:1", boot_id())));
        assert!(!owner_alive(&format!(
            "other-boot:{parent}:{}",
            start_time(parent).unwrap()
        )));
        assert!(!owner_alive(""));
        assert!(!owner_alive("a:b:c"));
    }
}
