//! The per-client connection cap: one address holds at most `max_connections_per_client`
//! connections on a listener, so a single client cannot take every slot of `max_connections`
//! and lock everyone else out. Addresses in `trusted_proxies` are exempt — a load balancer
//! carries many clients — and an IPv4-mapped IPv6 address counts as its IPv4 address (a
//! dual-stack socket reports IPv4 clients that way).
//!
//! The table holds only addresses with open connections: an entry goes when its count reaches
//! zero, so it never outgrows `max_connections`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipnet::IpNet;

pub(super) struct PerClient {
    /// 0: no cap.
    cap: usize,
    exempt: Vec<IpNet>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its client's count, given back when dropped.
pub(super) struct ClientSlot(Option<(Arc<PerClient>, IpAddr)>);

impl PerClient {
    pub(super) fn new(cap: usize, exempt: Vec<IpNet>) -> Arc<PerClient> {
        Arc::new(PerClient {
            cap,
            exempt,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a connection from `ip`, or `None` if that client is at the cap.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let client = ip.to_canonical();
        if self.cap == 0 || self.is_exempt(ip) || self.is_exempt(client) {
            return Some(ClientSlot(None));
        }
        let mut open = self.table();
        let count = open.entry(client).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(ClientSlot(Some((self.clone(), client))))
    }

    fn is_exempt(&self, ip: IpAddr) -> bool {
        self.exempt.iter().any(|net| net.contains(&ip))
    }

    fn release(&self, client: IpAddr) {
        if let Entry::Occupied(mut e) = self.table().entry(client) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// The table; a panic elsewhere while it was held left it consistent (every change is a
    /// single step), so a poisoned lock is still usable.
    fn table(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some((per_client, client)) = self.0.take() {
            per_client.release(client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn tracked(p: &PerClient) -> usize {
        p.table().len()
    }

    #[test]
    fn a_client_at_the_cap_is_refused_until_one_of_its_connections_ends() {
        let p = PerClient::new(2, Vec::new());
        let first = p.admit(ip("192.0.2.1")).unwrap();
        let _second = p.admit(ip("192.0.2.1")).unwrap();
        assert!(p.admit(ip("192.0.2.1")).is_none());
        assert!(
            p.admit(ip("192.0.2.2")).is_some(),
            "another client has its own count"
        );
        drop(first);
        assert!(p.admit(ip("192.0.2.1")).is_some());
    }

    #[test]
    fn clients_without_connections_leave_the_table() {
        let p = PerClient::new(2, Vec::new());
        let slots: Vec<_> = ["192.0.2.1", "192.0.2.1", "2001:db8::1"]
            .into_iter()
            .map(|a| p.admit(ip(a)).unwrap())
            .collect();
        assert_eq!(tracked(&p), 2);
        assert!(p.admit(ip("192.0.2.1")).is_none());
        assert_eq!(tracked(&p), 2, "a refusal adds nothing");
        drop(slots);
        assert_eq!(tracked(&p), 0);
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let p = PerClient::new(1, Vec::new());
        let _v4 = p.admit(ip("192.0.2.1")).unwrap();
        assert!(p.admit(ip("::ffff:192.0.2.1")).is_none());
    }

    #[test]
    fn trusted_proxies_are_exempt() {
        let p = PerClient::new(1, vec!["10.0.0.0/8".parse().unwrap()]);
        let slots: Vec<_> = (0..5)
            .map(|_| p.admit(ip("10.1.2.3")).unwrap())
            .chain((0..5).map(|_| p.admit(ip("::ffff:10.1.2.3")).unwrap()))
            .collect();
        assert_eq!(tracked(&p), 0);
        drop(slots);
        let _outside = p.admit(ip("192.0.2.1")).unwrap();
        assert!(p.admit(ip("192.0.2.1")).is_none());
    }

    #[test]
    fn a_cap_of_zero_means_no_cap() {
        let p = PerClient::new(0, Vec::new());
        let slots: Vec<_> = (0..1000)
            .map(|_| p.admit(ip("192.0.2.1")).unwrap())
            .collect();
        assert_eq!(slots.len(), 1000);
        assert_eq!(tracked(&p), 0);
    }
}
