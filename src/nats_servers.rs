//! A NATS `url` as the server takes it (a NATS sink's `url`, `--state-store`): one URL, or a cluster's nodes
//! separated by commas. async-nats takes a string as one URL and refuses a list; given the URLs apart, a client
//! connects to any node that is up, and a client that reconnects finds a node that is still there.

/// The URLs of `url`, each trimmed.
pub fn servers(url: &str) -> Vec<String> {
    url.split(',').map(|one| one.trim().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use async_nats::ToServerAddrs as _;

    use super::*;

    #[test]
    fn a_url_lists_a_clusters_nodes_separated_by_commas() {
        let url = "nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://u:p@127.0.0.1:4224";
        let listed = servers(url);
        assert_eq!(listed, ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://u:p@127.0.0.1:4224"]);
        let addrs: Vec<_> = listed.as_slice().to_server_addrs().unwrap().collect();
        assert_eq!(addrs.iter().map(|a| a.port()).collect::<Vec<_>>(), [4222, 4223, 4224]);
        // The client alone would take the whole list for one URL, and refuse it.
        assert!(url.to_server_addrs().is_err());
        assert_eq!(servers("nats://127.0.0.1:4222"), ["nats://127.0.0.1:4222"]);
    }
}
