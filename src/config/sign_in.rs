//! The `[sign_in]` section of the main file: how much sign-in traffic one client may cause.
//!
//! Every completed sign-in costs a store write, a call to Entra ID's token endpoint and, with a
//! certificate credential, a signature. The per-address rate limit bounds what one client can
//! make the proxy spend on `/.auth/login` and the callback; the redemption bound caps the
//! token-endpoint calls in flight whatever the number of clients.

use std::path::Path;
use std::time::Duration;

use super::raw::RawSignIn;
use super::ConfigError;

/// A rate: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// The time one request's allowance takes to come back.
    pub fn interval(self) -> Duration {
        self.per / self.count
    }
}

/// `[sign_in]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInConfig {
    /// Requests to `/.auth/login` and the callback per client address; `None`: no limit.
    pub rate_limit: Option<Rate>,
    /// How many of those requests a client may make at once after a quiet spell.
    pub burst: u32,
    /// Authorization codes redeemed at the same time at most, across all clients.
    pub max_concurrent_redemptions: usize,
}

const DEFAULT_RATE: &str = "30/min";
const DEFAULT_BURST: u32 = 10;
const DEFAULT_REDEMPTIONS: usize = 32;

impl Default for SignInConfig {
    /// 30 a minute with a burst of 10 per address, 32 redemptions at once.
    fn default() -> SignInConfig {
        SignInConfig {
            rate_limit: parse_rate(DEFAULT_RATE),
            burst: DEFAULT_BURST,
            max_concurrent_redemptions: DEFAULT_REDEMPTIONS,
        }
    }
}

pub(super) fn sign_in(raw: RawSignIn, file: &Path) -> Result<SignInConfig, ConfigError> {
    let text = raw.rate_limit.unwrap_or_else(|| DEFAULT_RATE.to_owned());
    let rate_limit = match text.trim() {
        "off" => None,
        t => Some(parse_rate(t).ok_or_else(|| {
            ConfigError::invalid(
                file,
                "sign_in.rate_limit",
                format!(
                    "a rate like \"30/min\" (a count from 1 to 1000000 per s, min or h) or \"off\", got {text:?}"
                ),
            )
        })?),
    };
    let burst = match raw.burst {
        None => DEFAULT_BURST,
        Some(n @ 1..=1_000_000) => n,
        Some(n) => {
            return Err(ConfigError::invalid(
                file,
                "sign_in.burst",
                format!("a number from 1 to 1000000, got {n}"),
            ))
        }
    };
    let max_concurrent_redemptions = match raw.max_concurrent_redemptions {
        None => DEFAULT_REDEMPTIONS,
        Some(n @ 1..=10_000) => n,
        Some(n) => {
            return Err(ConfigError::invalid(
                file,
                "sign_in.max_concurrent_redemptions",
                format!("a number from 1 to 10000, got {n}"),
            ))
        }
    };
    Ok(SignInConfig {
        rate_limit,
        burst,
        max_concurrent_redemptions,
    })
}

/// `"30/min"`, `"2/s"`, `"100/h"` (also `sec`, `second`, `minute`, `hour`).
fn parse_rate(text: &str) -> Option<Rate> {
    let (count, unit) = text.split_once('/')?;
    let count: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return None,
    };
    Some(Rate { count, per })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: RawSignIn) -> Result<SignInConfig, ConfigError> {
        sign_in(raw, Path::new("/etc/portcullis.toml"))
    }

    fn refused(raw: RawSignIn, key: &str, part: &str) {
        match check(raw) {
            Err(ConfigError::Invalid {
                file,
                key: k,
                expected,
            }) => {
                assert_eq!(file, Path::new("/etc/portcullis.toml"));
                assert_eq!(k, key);
                assert!(expected.contains(part), "{expected:?} lacks {part:?}");
            }
            other => panic!("expected `{key}` to be refused, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_thirty_a_minute_a_burst_of_ten_and_32_redemptions() {
        let c = check(RawSignIn::default()).unwrap();
        assert_eq!(c, SignInConfig::default());
        let rate = c.rate_limit.unwrap();
        assert_eq!(rate.interval(), Duration::from_secs(2));
        assert_eq!((c.burst, c.max_concurrent_redemptions), (10, 32));
    }

    #[test]
    fn rates_are_read_per_second_minute_or_hour_and_off_turns_the_limit_off() {
        for (text, count, per) in [
            ("5/s", 5, 1),
            ("30/min", 30, 60),
            (" 120 / minute ", 120, 60),
            ("1/h", 1, 3600),
        ] {
            let c = check(RawSignIn {
                rate_limit: Some(text.into()),
                ..RawSignIn::default()
            })
            .unwrap();
            assert_eq!(
                c.rate_limit,
                Some(Rate {
                    count,
                    per: Duration::from_secs(per)
                }),
                "{text}"
            );
        }
        let off = check(RawSignIn {
            rate_limit: Some("off".into()),
            ..RawSignIn::default()
        })
        .unwrap();
        assert_eq!(off.rate_limit, None);
    }

    #[test]
    fn malformed_rates_are_refused_naming_the_key() {
        for bad in [
            "30",
            "0/min",
            "-1/min",
            "30/day",
            "thirty/min",
            "",
            "2000000/s",
        ] {
            refused(
                RawSignIn {
                    rate_limit: Some(bad.into()),
                    ..RawSignIn::default()
                },
                "sign_in.rate_limit",
                "a rate like \"30/min\"",
            );
        }
    }

    #[test]
    fn a_zero_burst_or_redemption_bound_is_refused() {
        refused(
            RawSignIn {
                burst: Some(0),
                ..RawSignIn::default()
            },
            "sign_in.burst",
            "from 1",
        );
        refused(
            RawSignIn {
                max_concurrent_redemptions: Some(0),
                ..RawSignIn::default()
            },
            "sign_in.max_concurrent_redemptions",
            "from 1",
        );
    }
}
