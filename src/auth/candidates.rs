//! Which of the server's own ICE candidates a client learns: only those on
//! the configured local addresses (`ice.addresses`), and with a 1:1 NAT
//! (`ice.public_ip`) host candidates carry the public address instead.

use std::net::IpAddr;

use crate::config::IceConfig;

/// The candidate line to send for `candidate`, or None to keep it back.
/// Lines that cannot be read are passed on unchanged for webrtcbin's peer
/// to judge.
pub fn announce(candidate: &str, ice: &IceConfig) -> Option<String> {
    let mut fields: Vec<&str> = candidate.split(' ').collect();
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
    let (Some(address), Some(kind)) = (fields.get(4).copied(), fields.get(7).copied()) else {
        return Some(candidate.to_string());
    };
    let Ok(ip) = address.parse::<IpAddr>() else {
        return Some(candidate.to_string());
    };
    if kind == "host" && !ice.addresses.is_empty() && !ice.addresses.contains(&ip) {
        return None;
    }
    let public = ice.public_ip.map(|p| p.to_string());
    match &public {
        Some(p) if kind == "host" => fields[4] = p,
        _ => {}
    }
    Some(fields.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAN: &str = "candidate:1 1 UDP 2015363327 10.0.0.5 40001 typ host";
    const DOCKER: &str = "candidate:2 1 UDP 2015363071 172.17.0.1 40001 typ host";

    #[test]
    fn everything_passes_by_default() {
        let ice = IceConfig::default();
        assert_eq!(announce(LAN, &ice).as_deref(), Some(LAN));
        assert_eq!(announce("", &ice).as_deref(), Some(""));
    }

    #[test]
    fn only_configured_addresses_are_offered_and_nat_maps_them() {
        let ice = IceConfig {
            addresses: vec!["10.0.0.5".parse().unwrap()],
            public_ip: Some("203.0.113.7".parse().unwrap()),
            ..IceConfig::default()
        };
        assert_eq!(announce(DOCKER, &ice), None);
        assert_eq!(
            announce(LAN, &ice).as_deref(),
            Some("candidate:1 1 UDP 2015363327 203.0.113.7 40001 typ host")
        );
        let relay = "candidate:3 1 UDP 100 198.51.100.1 3478 typ relay raddr 10.0.0.5 rport 40001";
        assert_eq!(announce(relay, &ice).as_deref(), Some(relay));
    }
}
