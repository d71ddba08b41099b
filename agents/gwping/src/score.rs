//! The score: the weights of the reachable hosts, summed, times the multiplier.

use crate::params::HostSpec;
use crate::probe::Outcome;

/// What one probe adds up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    /// The attribute's value.
    pub value: i64,
    pub reachable: usize,
    pub total: usize,
}

/// Sums the weights of the hosts whose outcome is up and multiplies. Outcomes beyond the host
/// list (or missing ones) are ignored: only a paired host can count. Saturates instead of
/// overflowing, although the parameter limits keep every real sum far from it.
pub fn score(hosts: &[HostSpec], outcomes: &[Outcome], multiplier: i64) -> Score {
    let mut weights: i64 = 0;
    let mut reachable = 0;
    for (spec, outcome) in hosts.iter().zip(outcomes) {
        if outcome.is_up() {
            weights = weights.saturating_add(i64::from(spec.weight));
            reachable += 1;
        }
    }
    Score {
        value: weights.saturating_mul(multiplier),
        reachable,
        total: hosts.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Host;
    use std::time::Duration;

    fn host(weight: u32) -> HostSpec {
        HostSpec {
            host: Host::Name("h".into()),
            weight,
        }
    }

    fn up() -> Outcome {
        Outcome::Up {
            address: "192.0.2.1".parse().unwrap(),
            rtt: Duration::from_millis(1),
        }
    }

    fn down() -> Outcome {
        Outcome::Down {
            address: "192.0.2.1".parse().unwrap(),
            refused: None,
        }
    }

    #[test]
    fn unweighted_is_count_times_multiplier_like_the_stock_agent() {
        let hosts = [host(1), host(1), host(1)];
        let s = score(&hosts, &[up(), down(), up()], 1000);
        assert_eq!(
            s,
            Score {
                value: 2000,
                reachable: 2,
                total: 3
            }
        );
    }

    #[test]
    fn weights_add_up() {
        let hosts = [host(5), host(2), host(1)];
        assert_eq!(score(&hosts, &[up(), down(), up()], 1).value, 6);
        assert_eq!(score(&hosts, &[down(), up(), down()], 10).value, 20);
        let unresolved = Outcome::Unresolved { reason: "x".into() };
        assert_eq!(score(&hosts, &[down(), down(), unresolved], 10).value, 0);
        assert_eq!(score(&hosts, &[up(), up(), up()], -1).value, -8);
    }

    #[test]
    fn mismatched_lengths_and_extremes_do_not_panic() {
        assert_eq!(score(&[host(3)], &[], 1).value, 0);
        assert_eq!(score(&[], &[up()], 1).value, 0);
        let hosts = vec![host(u32::MAX); 4];
        let outcomes = vec![up(); 4];
        assert_eq!(score(&hosts, &outcomes, i64::MAX).value, i64::MAX);
        assert_eq!(score(&hosts, &outcomes, i64::MIN).value, i64::MIN);
    }
}
