//! Addresses as text, cheaply: a request of a client without a key names
//! it by its address, and `format!` of an address costs more than a
//! thousand instructions (IPv4 is written by hand here; IPv6 goes through
//! `fmt`, it is rarer).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// What stands for one client when clients are counted by address: its
/// IPv4 address, or the /64 network of its IPv6 address (one host usually
/// has a whole /64, so counting addresses would let it mint clients at
/// will). An IPv4 address mapped into IPv6 counts as that IPv4 address.
pub(crate) fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(std::net::Ipv6Addr::from(octets))
            }
        },
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, n: u16) {
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Appends `ip` as `Display` writes it.
pub(crate) fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(out, u16::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `addr` as `Display` writes it (`[ip]:port` for IPv6).
pub(crate) fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            push_ip(out, IpAddr::V4(*v4.ip()));
            out.push(':');
            push_decimal(out, v4.port());
        }
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_display_writes_them() {
        for addr in [
            "0.0.0.0:0",
            "127.0.0.1:8000",
            "10.9.99.100:65535",
            "255.255.255.255:1",
            "[::1]:443",
            "[2001:db8::7]:10",
        ] {
            let addr: SocketAddr = addr.parse().expect("an address");
            let mut ip = String::new();
            push_ip(&mut ip, addr.ip());
            assert_eq!(ip, addr.ip().to_string());
            let mut whole = String::new();
            push_socket_addr(&mut whole, addr);
            assert_eq!(whole, addr.to_string());
        }
    }
}
