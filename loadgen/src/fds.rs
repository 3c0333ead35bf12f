//! Open files: every keep-alive connection is a descriptor, and 10,000 clients need 10,000
//! of them while a shell's default soft limit is often 1,024. loadgen raises its own soft
//! limit to the hard one at start, and a scenario checks its connections fit before it
//! opens them: past the limit, `connect` fails with EMFILE mid-run, which would read as the
//! server refusing connections.

use anyhow::bail;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept for everything but the scenario's connections: MySQL and Redis pools,
/// the runtime's epoll and wakers, stdio, spawned services' pipes and logs.
pub const RESERVE: u64 = 256;

/// Raises the soft open-files limit to the hard one; a failure is only warned about, since
/// the check before each scenario still stops a run that would not fit.
pub fn raise_open_files_limit() {
    let raised = getrlimit(Resource::RLIMIT_NOFILE)
        .and_then(|(soft, hard)| if soft < hard { setrlimit(Resource::RLIMIT_NOFILE, hard, hard) } else { Ok(()) });
    if let Err(err) = raised {
        eprintln!("loadgen: cannot raise the open-files limit ({err}); keeping it as it is");
    }
}

/// Fails in one line when `connections` sockets, with the [`RESERVE`], would not fit under
/// the open-files limit. `what` names what asks for them (`--clients 30000`).
pub fn ensure_room_for(connections: usize, what: &str) -> anyhow::Result<()> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if let Some(needed) = shortfall(connections, soft) {
        bail!(
            "{what}: about {needed} open files needed ({connections} connections + {RESERVE} spare), but loadgen \
             may open {soft} (hard limit {hard}); raise the hard limit (ulimit -Hn, LimitNOFILE) or use fewer clients"
        );
    }
    Ok(())
}

/// The descriptors `connections` need, when more than `limit` allows.
fn shortfall(connections: usize, limit: u64) -> Option<u64> {
    let needed = (connections as u64).saturating_add(RESERVE);
    (needed > limit).then_some(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_and_the_reserve_must_fit_under_the_limit() {
        assert_eq!(shortfall(10_000, 20_000), None);
        assert_eq!(shortfall(19_744, 20_000), None, "exactly at the limit");
        assert_eq!(shortfall(19_745, 20_000), Some(20_001));
        assert_eq!(shortfall(1_000, 1_024), Some(1_256));
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        raise_open_files_limit();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, hard);
        assert!(ensure_room_for(0, "--clients 0").is_ok());
        let err = ensure_room_for(usize::try_from(hard).unwrap_or(usize::MAX), "--clients many").unwrap_err();
        assert!(err.to_string().starts_with("--clients many: about"), "{err}");
    }
}
