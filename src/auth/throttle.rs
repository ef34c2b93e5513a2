//! The per-client rate limit of the sign-in endpoints (`/.auth/login` and the callback): a
//! token bucket per client address.
//!
//! A bucket holds `burst` tokens and gains one every `rate` interval; each request takes one,
//! and a request that finds the bucket empty is refused with the time until the next token.
//! A bucket is kept as one instant, the time it will be full again (the "theoretical arrival
//! time" of GCRA, the same bucket with less state), so a bucket that is full carries no
//! information: idle entries are dropped by a sweep that runs at most every 30 s, and the
//! table never holds more than [`MAX_TRACKED`] addresses.
//!
//! Keys are the client address as the forwarding rules decided it (`trusted_proxies`), with an
//! IPv4-mapped IPv6 address read as IPv4 and IPv6 addresses cut to their /64: one subscriber
//! usually holds a whole /64, so counting single IPv6 addresses would let one client rotate
//! through 2^64 buckets.
//!
//! When the table is full of buckets that are not idle, a new address is let through
//! untracked rather than refused: refusing would let anyone who controls that many addresses
//! lock everyone else out of signing in, while letting them through costs no more than those
//! addresses could already spend. The redemption bound (`sign_in.rs`) still caps the token
//! calls in flight.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::sign_in::Rate;

/// Addresses tracked at most (about 3 MB of table).
pub const MAX_TRACKED: usize = 65_536;
/// How often idle buckets are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How often at most a full table is swept (a sweep walks the whole table).
const SWEEP_WHEN_FULL: Duration = Duration::from_secs(1);

/// The rate limit: a bucket per client address.
pub struct Throttle {
    limit: Option<Limit>,
    max_tracked: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Clone, Copy)]
struct Limit {
    /// How long one token takes to come back.
    interval: Duration,
    /// How long a bucket takes to fill from empty: `burst` intervals.
    depth: Duration,
}

struct Table {
    buckets: HashMap<IpAddr, Bucket>,
    last_sweep: Instant,
    /// A full table was reported since the last sweep.
    overflow_reported: bool,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// When the bucket is full again; at or before now it is full.
    full_at: Instant,
    /// The last request was refused (only the first refusal of a run is logged).
    refusing: bool,
}

/// Whether a request may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit: the next token comes after `retry_after`. `first` is the first refusal
    /// since this client's last allowed request.
    Refused {
        retry_after: Duration,
        first: bool,
    },
}

impl Throttle {
    /// `None`: no limit. `burst` is at least 1 (the configuration refuses 0).
    pub fn new(rate: Option<Rate>, burst: u32) -> Throttle {
        Throttle::with_capacity(rate, burst, MAX_TRACKED)
    }

    fn with_capacity(rate: Option<Rate>, burst: u32, max_tracked: usize) -> Throttle {
        let limit = rate.map(|r| {
            let interval = r.interval();
            Limit {
                interval,
                depth: interval.saturating_mul(burst.max(1)),
            }
        });
        Throttle {
            limit,
            max_tracked,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                last_sweep: Instant::now(),
                overflow_reported: false,
            }),
        }
    }

    /// Takes a token from `client`'s bucket, now.
    pub fn check(&self, client: IpAddr) -> Verdict {
        self.check_at(client, Instant::now())
    }

    fn check_at(&self, client: IpAddr, now: Instant) -> Verdict {
        let Some(limit) = self.limit else {
            return Verdict::Allowed;
        };
        let key = key(client);
        let mut table = self.table();
        self.sweep_if_due(&mut table, now);
        if let Some(b) = table.buckets.get_mut(&key) {
            let next = b.full_at.max(now) + limit.interval;
            let ahead = next.saturating_duration_since(now);
            return if ahead <= limit.depth {
                *b = Bucket {
                    full_at: next,
                    refusing: false,
                };
                Verdict::Allowed
            } else {
                let first = !b.refusing;
                b.refusing = true;
                Verdict::Refused {
                    retry_after: ahead - limit.depth,
                    first,
                }
            };
        }
        if table.buckets.len() >= self.max_tracked {
            if !table.overflow_reported {
                table.overflow_reported = true;
                tracing::warn!(
                    tracked = table.buckets.len(),
                    "sign-in rate limit: too many client addresses at once; new ones are not limited until buckets go idle"
                );
            }
            return Verdict::Allowed;
        }
        table.buckets.insert(
            key,
            Bucket {
                full_at: now + limit.interval,
                refusing: false,
            },
        );
        Verdict::Allowed
    }

    fn sweep_if_due(&self, table: &mut Table, now: Instant) {
        let every = if table.buckets.len() >= self.max_tracked {
            SWEEP_WHEN_FULL
        } else {
            SWEEP_EVERY
        };
        if now.saturating_duration_since(table.last_sweep) < every {
            return;
        }
        table.buckets.retain(|_, b| b.full_at > now);
        table.last_sweep = now;
        table.overflow_reported = false;
    }

    /// The table; every change to it is a single step, so a lock poisoned by a panic
    /// elsewhere still guards a consistent table.
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The bucket an address counts in: IPv4 (mapped or not) as it is, IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (!0u128 << 64))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// 30 a minute (one token every 2 s), burst 3.
    fn throttle() -> Throttle {
        Throttle::new(
            Some(Rate {
                count: 30,
                per: Duration::from_secs(60),
            }),
            3,
        )
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn tracked(t: &Throttle) -> usize {
        t.table().buckets.len()
    }

    #[test]
    fn a_burst_passes_then_requests_are_refused_until_a_token_comes_back() {
        let t = throttle();
        let start = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(t.check_at(a, start), Verdict::Allowed);
        }
        assert_eq!(
            t.check_at(a, start),
            Verdict::Refused {
                retry_after: secs(2),
                first: true
            }
        );
        // A refusal takes nothing: the wait shrinks with time, not with more refusals.
        assert_eq!(
            t.check_at(a, start + secs(1)),
            Verdict::Refused {
                retry_after: secs(1),
                first: false
            }
        );
        assert_eq!(t.check_at(a, start + secs(2)), Verdict::Allowed);
        assert!(matches!(
            t.check_at(a, start + secs(2)),
            Verdict::Refused { first: true, .. }
        ));
    }

    #[test]
    fn the_steady_rate_passes_and_an_idle_bucket_refills_to_the_burst_only() {
        let t = throttle();
        let start = Instant::now();
        let a = ip("192.0.2.1");
        for i in 0..100 {
            assert_eq!(t.check_at(a, start + secs(2 * i)), Verdict::Allowed, "{i}");
        }
        // An hour of quiet gives back the burst, not an hour's worth.
        let later = start + secs(3600);
        for _ in 0..3 {
            assert_eq!(t.check_at(a, later), Verdict::Allowed);
        }
        assert!(matches!(t.check_at(a, later), Verdict::Refused { .. }));
    }

    #[test]
    fn each_address_has_its_own_bucket_and_ipv6_counts_by_its_64() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..3 {
            t.check_at(ip("192.0.2.1"), now);
        }
        assert!(matches!(
            t.check_at(ip("192.0.2.1"), now),
            Verdict::Refused { .. }
        ));
        assert!(matches!(
            t.check_at(ip("::ffff:192.0.2.1"), now),
            Verdict::Refused { .. }
        ));
        assert_eq!(t.check_at(ip("192.0.2.2"), now), Verdict::Allowed);

        for i in 0..3 {
            let addr = format!("2001:db8:1:2::{i}");
            assert_eq!(t.check_at(ip(&addr), now), Verdict::Allowed);
        }
        assert!(matches!(
            t.check_at(ip("2001:db8:1:2:ffff::9"), now),
            Verdict::Refused { .. }
        ));
        assert_eq!(t.check_at(ip("2001:db8:1:3::1"), now), Verdict::Allowed);
    }

    #[test]
    fn idle_buckets_leave_the_table() {
        let t = throttle();
        let start = Instant::now();
        for i in 0..10 {
            t.check_at(ip(&format!("192.0.2.{i}")), start);
        }
        assert_eq!(tracked(&t), 10);
        // Full again after 2 s, dropped at the next sweep.
        t.check_at(ip("198.51.100.1"), start + SWEEP_EVERY + secs(1));
        assert_eq!(tracked(&t), 1);
    }

    #[test]
    fn a_full_table_lets_new_addresses_through_untracked_and_sweeps_when_it_can() {
        let t = Throttle::with_capacity(
            Some(Rate {
                count: 1,
                per: Duration::from_secs(3600),
            }),
            1,
            4,
        );
        let start = Instant::now();
        for i in 0..4 {
            assert_eq!(
                t.check_at(ip(&format!("192.0.2.{i}")), start),
                Verdict::Allowed
            );
        }
        for _ in 0..3 {
            assert_eq!(t.check_at(ip("198.51.100.1"), start), Verdict::Allowed);
        }
        assert_eq!(tracked(&t), 4, "the table does not grow past its bound");
        // Tracked addresses are still limited.
        assert!(matches!(
            t.check_at(ip("192.0.2.0"), start),
            Verdict::Refused { .. }
        ));
        // Once the buckets are idle, a sweep makes room.
        let later = start + secs(3601);
        assert_eq!(t.check_at(ip("198.51.100.1"), later), Verdict::Allowed);
        assert_eq!(tracked(&t), 1);
        assert!(matches!(
            t.check_at(ip("198.51.100.1"), later),
            Verdict::Refused { .. }
        ));
    }

    #[test]
    fn no_rate_means_no_limit_and_no_table() {
        let t = Throttle::new(None, 1);
        let now = Instant::now();
        for _ in 0..1000 {
            assert_eq!(t.check_at(ip("192.0.2.1"), now), Verdict::Allowed);
        }
        assert_eq!(tracked(&t), 0);
    }
}
