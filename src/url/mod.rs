//! The `connect` URL format: `scheme://host:port[,host:port...][?options]`.

mod options;

use crate::{Backend, Config, Error, Result};
use options::{percent_decode, set_options};

/// Every URL form, for hints and help texts: one list, so none leaves a
/// backend out.
pub(crate) const URL_FORMS: &str = "memory://, file:///path/store.redb, \
redis://[user:password@]host:port[/db], zk://[user:password@]host:port[/chroot], \
consul://host:port or etcd://host:port";

/// A parsed `connect` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreUrl {
    pub(crate) backend: Backend,
    pub(crate) endpoints: Vec<String>,
}

/// Splits `scheme://host:port[,host:port...][?name=value&...]` into the backend,
/// its endpoints and a [`Config`]. Errors never echo the URL, which may carry
/// credentials.
pub(crate) fn parse_url(url: &str) -> Result<(StoreUrl, Config)> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::InvalidArgument(format!("a store URL looks like {URL_FORMS}")))?;
    let (backend, https) = match scheme {
        "memory" => (Backend::Memory, false),
        "file" => return parse_file_url(rest),
        "consul" => (Backend::Consul, false),
        "etcd" => (Backend::Etcd, false),
        "redis" => (Backend::Redis, false),
        "rediss" => (Backend::Redis, true),
        "zk" => (Backend::ZooKeeper, false),
        "consul+https" => (Backend::Consul, true),
        "etcd+https" => (Backend::Etcd, true),
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown scheme {other:?} (known: memory, file, redis, rediss, zk, consul, etcd, consul+https, etcd+https)"
            )));
        }
    };
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = authority.trim_end_matches('/');
    let mut config = Config::from_env();
    if https {
        config.tls = Some(crate::TlsConfig::default());
    }
    // `user:password@host:port,...`: the credentials apply to every endpoint.
    let authority = match authority.rsplit_once('@') {
        None => authority,
        Some((userinfo, hosts)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            config.username = Some(percent_decode("user name", user)?);
            config.password = Some(percent_decode("password", password)?);
            hosts
        }
    };
    let endpoints: Vec<String> = authority
        .split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    match backend {
        Backend::Memory if !endpoints.is_empty() => {
            return Err(Error::InvalidArgument(
                "memory:// takes no host: each memory:// URL is a new, empty store".into(),
            ));
        }
        Backend::Consul | Backend::Etcd | Backend::Redis | Backend::ZooKeeper
            if endpoints.is_empty() =>
        {
            return Err(Error::InvalidArgument(format!(
                "{scheme}:// needs at least one host:port"
            )));
        }
        _ => {}
    }
    set_options(&mut config, backend, query)?;
    Ok((StoreUrl { backend, endpoints }, config))
}

/// `file:///absolute/path` or `file://./relative/path`, then options: the
/// path is the one endpoint, percent-decoded.
fn parse_file_url(rest: &str) -> Result<(StoreUrl, Config)> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(Error::InvalidArgument(
            "file:// needs a path: file:///absolute/path.redb or file://./relative.redb".into(),
        ));
    }
    if !(path.starts_with('/') || path.starts_with("./") || path.starts_with("../")) {
        return Err(Error::InvalidArgument(
            "file:// takes no host: file:///absolute/path.redb or file://./relative.redb".into(),
        ));
    }
    let path = percent_decode("path", path)?;
    let mut config = Config::from_env();
    set_options(&mut config, Backend::File, query)?;
    let url = StoreUrl {
        backend: Backend::File,
        endpoints: vec![path],
    };
    Ok((url, config))
}

#[cfg(test)]
mod tests {
    use super::options::parse_duration;
    use super::*;
    use std::time::Duration;

    #[test]
    fn file_urls_take_a_path() {
        let (url, config) = parse_url("file:///var/lib/app/store.redb?history=5").unwrap();
        assert_eq!(url.backend, Backend::File);
        assert_eq!(url.endpoints, ["/var/lib/app/store.redb"]);
        assert_eq!(config.history, 5);
        let (url, _) = parse_url("file://./data/my%20store.redb").unwrap();
        assert_eq!(url.endpoints, ["./data/my store.redb"]);
        for refused in ["file://", "file://host/store.redb", "file:///a?colour=blue"] {
            assert!(
                matches!(parse_url(refused), Err(Error::InvalidArgument(_))),
                "{refused}"
            );
        }
    }

    #[test]
    fn https_schemes_and_tls_options() {
        let (url, config) = parse_url(
            "etcd+https://h:1?ca_file=/ca.pem&cert_file=/c.pem&key_file=/k.pem&tls_server_name=etcd.local",
        )
        .unwrap();
        assert_eq!(url.backend, Backend::Etcd);
        let tls = config.tls.expect("TLS on");
        assert_eq!(
            tls.ca_file.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        assert_eq!(
            tls.key_file.as_deref(),
            Some(std::path::Path::new("/k.pem"))
        );
        assert_eq!(tls.server_name.as_deref(), Some("etcd.local"));
        let (url, config) = parse_url("consul+https://h:1").unwrap();
        assert_eq!(url.backend, Backend::Consul);
        assert_eq!(config.tls, Some(crate::TlsConfig::default()));
        // TLS options on a plain scheme are a mistake, not ignored.
        assert!(parse_url("consul://h:1?ca_file=/ca.pem").is_err());
        assert!(parse_url("memory+https://").is_err());
    }

    #[test]
    fn stall_timeout_and_validation() {
        let (_, config) = parse_url("consul://h:1?stall_timeout=30s").unwrap();
        assert_eq!(config.stall_timeout, Duration::from_secs(30));
        assert!(config.validate().is_ok());
        assert!(
            Config::default()
                .with_stall_timeout(Duration::from_millis(10))
                .validate()
                .is_err()
        );
        assert!(
            Config::default()
                .with_timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn parses_endpoints_and_options() {
        let (url, config) =
            parse_url("consul://127.0.0.1:8500,127.0.0.1:8501/?timeout=250ms").unwrap();
        assert_eq!(url.backend, Backend::Consul);
        assert_eq!(url.endpoints, ["127.0.0.1:8500", "127.0.0.1:8501"]);
        assert_eq!(config.timeout, Duration::from_millis(250));
    }

    #[test]
    fn memory_takes_no_host_and_options_are_checked() {
        assert!(parse_url("memory://").is_ok());
        assert!(parse_url("memory://?history=5").is_ok());
        for (text, size) in [("7", 7), ("512KiB", 512 * 1024), ("1MiB", 1 << 20)] {
            let url = format!("memory://?max_value_size={text}");
            assert_eq!(parse_url(&url).unwrap().1.max_value_size, Some(size));
        }
        for bad in ["", "1kb", "x", "99999999999999999999MiB"] {
            let url = format!("memory://?max_value_size={bad}");
            assert!(parse_url(&url).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse_url("memory://x"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            parse_url("memory://?timout=5s"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            parse_url("mongodb://x"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            parse_url("etcd://"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            parse_url("nonsense"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn each_backend_takes_only_its_own_options() {
        let refused = [
            ("etcd://127.0.0.1:2379?namespace=x", "namespace", "etcd://"),
            ("redis://127.0.0.1:6379?dc=x", "dc", "redis://"),
            (
                "redis://127.0.0.1:6379?max_value_size=1KiB",
                "max_value_size",
                "redis://",
            ),
            ("file:///tmp/a.redb?lock_ttl=1s", "lock_ttl", "file://"),
            ("memory://?lock_ttl=3s", "lock_ttl", "memory://"),
            ("consul://127.0.0.1:8500?history=5", "history", "consul://"),
            ("etcd://127.0.0.1:2379?reads=local", "reads", "etcd://"),
        ];
        for (url, option, backend) in refused {
            let Err(Error::InvalidArgument(message)) = parse_url(url) else {
                panic!("{url} was accepted");
            };
            assert!(
                message.contains(option) && message.contains(backend),
                "{message}"
            );
            assert!(message.contains("it takes"), "{message}");
        }
        let Err(Error::InvalidArgument(message)) = parse_url("etcd://h:1?colour=x") else {
            panic!("an unknown option was accepted");
        };
        assert!(
            message.starts_with("unknown option \"colour\" for etcd://"),
            "{message}"
        );
        for url in [
            "redis://h:1?history=5&namespace=app&timeout=1s&lock_ttl=3s",
            "consul://h:1?token=t&dc=eu&stall_timeout=1m",
            "etcd://h:1?timeout=1s&lock_ttl=3s&stall_timeout=1m",
            "file:///tmp/a.redb?history=5&max_value_size=1KiB",
            "memory://?timeout=5s",
        ] {
            parse_url(url).unwrap();
        }
        assert!(URL_FORMS.contains("redis://") && URL_FORMS.contains("file://"));
        let (_, config) = parse_url("zk://h:1?reads=local&lock_ttl=3s").unwrap();
        assert_eq!(config.zookeeper_reads, crate::ZooKeeperReads::Local);
        let (_, config) = parse_url("zk://h:1").unwrap();
        assert_eq!(config.zookeeper_reads, crate::ZooKeeperReads::Fresh);
        assert!(parse_url("zk://h:1?reads=stale").is_err());
    }

    #[test]
    fn tokens_are_read_and_never_shown() {
        let (_, config) = parse_url("consul://h:1?token=s3cr%2Ft&dc=east").unwrap();
        assert_eq!(config.token.as_deref(), Some("s3cr/t"));
        assert_eq!(config.datacenter.as_deref(), Some("east"));
        assert!(!format!("{config:?}").contains("s3cr"));
    }

    #[test]
    fn userinfo_is_read_and_the_password_never_shown() {
        let (url, config) = parse_url("etcd://root:p%40ss@127.0.0.1:2379,127.0.0.1:2380").unwrap();
        assert_eq!(url.endpoints, ["127.0.0.1:2379", "127.0.0.1:2380"]);
        assert_eq!(config.username.as_deref(), Some("root"));
        assert_eq!(config.password.as_deref(), Some("p@ss"));
        assert!(!format!("{config:?}").contains("p@ss"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("t", "5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("t", "2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("t", "1h").unwrap(),
            Duration::from_secs(3600)
        );
        for bad in ["", "5", "s", "5x", "-1s", "99999999999999999999s"] {
            assert!(parse_duration("t", bad).is_err(), "{bad:?}");
        }
    }
}
