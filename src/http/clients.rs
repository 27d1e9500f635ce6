//! Connections per client: one client (an address, or an IPv6 /64) may
//! hold at most [`crate::http::config::Config::max_connections_per_client`]
//! of the server's connections, so it cannot take every slot and turn
//! everyone else away with 503s. Connections from trusted proxies are not
//! counted: each carries many clients.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

/// How many connections each client holds.
#[derive(Debug)]
pub(crate) struct ClientConns {
    /// Most connections of one client.
    per_client: u32,
    /// Peers not counted (load balancers).
    trusted: Vec<ipnet::IpNet>,
    /// Connections held, by client; a client holding none has no entry,
    /// so the map is never larger than the connections open.
    held: Mutex<HashMap<IpAddr, u32>>,
}

impl ClientConns {
    /// A table allowing `per_client` connections to each client, none of
    /// them counted from `trusted` peers.
    pub(crate) fn new(per_client: usize, trusted: Vec<ipnet::IpNet>) -> ClientConns {
        ClientConns {
            per_client: u32::try_from(per_client.max(1)).unwrap_or(u32::MAX),
            trusted,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a connection from `peer`: the client to give back when it
    /// closes (`None` for a trusted proxy), or `Err` when the client
    /// already holds its share.
    pub(crate) fn take(&self, peer: IpAddr) -> Result<Option<IpAddr>, ()> {
        if super::forwarded::is_trusted(&self.trusted, peer) {
            return Ok(None);
        }
        let client = crate::util::addr::client_network(peer);
        let mut held = self.held.lock();
        let count = held.entry(client).or_insert(0);
        if *count >= self.per_client {
            return Err(());
        }
        *count += 1;
        Ok(Some(client))
    }

    /// Gives back a connection [`ClientConns::take`] counted.
    pub(crate) fn give_back(&self, client: IpAddr) {
        let mut held = self.held.lock();
        if let Some(count) = held.get_mut(&client) {
            *count -= 1;
            if *count == 0 {
                held.remove(&client);
            }
        }
    }

    /// How many clients hold a connection now.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.held.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn a_client_holds_its_share_and_no_more() {
        let conns = ClientConns::new(2, vec!["10.9.0.0/16".parse().expect("net")]);
        let a = conns
            .take(ip("192.0.2.1"))
            .expect("first")
            .expect("counted");
        conns.take(ip("192.0.2.1")).expect("second");
        assert!(conns.take(ip("192.0.2.1")).is_err(), "a third");
        assert!(conns.take(ip("192.0.2.2")).is_ok(), "another client");
        // An IPv6 /64 is one client; mapped IPv4 is the IPv4 address.
        conns.take(ip("2001:db8::1")).expect("v6");
        conns.take(ip("2001:db8::ffff:2")).expect("v6, same /64");
        assert!(conns.take(ip("2001:db8::3")).is_err());
        assert!(conns.take(ip("::ffff:192.0.2.1")).is_err());
        // A trusted proxy is never counted.
        for _ in 0..10 {
            assert_eq!(conns.take(ip("10.9.1.1")), Ok(None));
            assert_eq!(conns.take(ip("::ffff:10.9.1.2")), Ok(None), "mapped");
        }
        // One given back: room for one more; all given back: no entry left.
        conns.give_back(a);
        assert!(conns.take(ip("192.0.2.1")).is_ok());
        for _ in 0..2 {
            conns.give_back(a);
        }
        conns.give_back(ip("192.0.2.2"));
        for _ in 0..2 {
            conns.give_back(ip("2001:db8::"));
        }
        assert_eq!(conns.clients(), 0);
    }
}
