//! Opening a store: from a backend, its endpoints and a [`Config`]
//! ([`create_store`]), or from a URL ([`connect`], [`connect_lazy`]).

use std::sync::Arc;

use crate::{Backend, Config, Error, Result, Store, backend, url};

/// A store just made, before it is handed out as `Arc<dyn Store>`.
enum Opened {
    Memory(backend::local::LocalStore),
    #[cfg(feature = "file")]
    File(backend::local::LocalStore),
    #[cfg(feature = "redis")]
    Redis(backend::redis::RedisStore),
    #[cfg(feature = "consul")]
    Consul(backend::consul::ConsulStore),
    #[cfg(feature = "etcd")]
    Etcd(backend::etcd::EtcdStore),
    #[cfg(feature = "zookeeper")]
    ZooKeeper(backend::zookeeper::ZooKeeperStore),
}

impl Opened {
    /// Makes the store `backend` names, refusing what this build left out.
    fn new(backend: Backend, endpoints: &[&str], config: Config) -> Result<Opened> {
        config.validate()?;
        if config.tls.is_some() && !cfg!(feature = "tls") {
            return Err(Error::Unsupported {
                backend: backend.name(),
                what: "TLS: this build of kvmesh left it out: enable the `tls` cargo feature"
                    .into(),
            });
        }
        match backend {
            Backend::Memory => {
                if !endpoints.is_empty() {
                    return Err(Error::InvalidArgument(
                        "the memory backend takes no endpoints".into(),
                    ));
                }
                Ok(Opened::Memory(backend::memory::open(&config)))
            }
            #[cfg(feature = "file")]
            Backend::File => match endpoints {
                [path] => Ok(Opened::File(backend::file::open(path, &config)?)),
                _ => Err(Error::InvalidArgument(
                    "the file backend takes one endpoint: the file's path".into(),
                )),
            },
            #[cfg(feature = "redis")]
            Backend::Redis => Ok(Opened::Redis(backend::redis::RedisStore::new(
                endpoints, config,
            )?)),
            #[cfg(feature = "consul")]
            Backend::Consul => Ok(Opened::Consul(backend::consul::ConsulStore::new(
                endpoints, config,
            )?)),
            #[cfg(feature = "etcd")]
            Backend::Etcd => Ok(Opened::Etcd(backend::etcd::EtcdStore::new(
                endpoints, config,
            )?)),
            #[cfg(feature = "zookeeper")]
            Backend::ZooKeeper => Ok(Opened::ZooKeeper(backend::zookeeper::ZooKeeperStore::new(
                endpoints, &config,
            )?)),
            #[allow(unreachable_patterns)]
            left_out => Err(Error::Unsupported {
                backend: left_out.name(),
                what: format!(
                    "this build of kvmesh left it out: enable the `{}` cargo feature",
                    match left_out {
                        Backend::ZooKeeper => "zookeeper",
                        other => other.name(),
                    }
                ),
            }),
        }
    }

    /// One request that any endpoint of a network store answers.
    async fn check_reachable(&self) -> Result<()> {
        match self {
            Opened::Memory(_) => Ok(()),
            #[cfg(feature = "file")]
            Opened::File(_) => Ok(()),
            #[cfg(feature = "redis")]
            Opened::Redis(store) => store.check_reachable().await,
            #[cfg(feature = "consul")]
            Opened::Consul(store) => store.check_reachable().await,
            #[cfg(feature = "etcd")]
            Opened::Etcd(store) => store.check_reachable().await,
            #[cfg(feature = "zookeeper")]
            Opened::ZooKeeper(store) => store.check_reachable().await,
        }
    }

    fn into_store(self) -> Arc<dyn Store> {
        match self {
            Opened::Memory(store) => Arc::new(store),
            #[cfg(feature = "file")]
            Opened::File(store) => Arc::new(store),
            #[cfg(feature = "redis")]
            Opened::Redis(store) => Arc::new(store),
            #[cfg(feature = "consul")]
            Opened::Consul(store) => Arc::new(store),
            #[cfg(feature = "etcd")]
            Opened::Etcd(store) => Arc::new(store),
            #[cfg(feature = "zookeeper")]
            Opened::ZooKeeper(store) => Arc::new(store),
        }
    }

    /// The store a URL names.
    fn from_url(url: &str) -> Result<Opened> {
        let (url, config) = url::parse_url(url)?;
        let endpoints: Vec<&str> = url.endpoints.iter().map(String::as_str).collect();
        Opened::new(url.backend, &endpoints, config)
    }
}

/// Creates a store for `backend` (the seed's `CreateStore`).
///
/// Not async: a network backend connects lazily on first use. The memory
/// backend takes no endpoints; each call makes a new, empty store.
///
/// ```
/// use kvmesh::{Backend, Config};
/// let store = kvmesh::create_store(Backend::Memory, &[], Config::default()).unwrap();
/// ```
pub fn create_store(
    backend: Backend,
    endpoints: &[&str],
    config: Config,
) -> Result<Arc<dyn Store>> {
    Opened::new(backend, endpoints, config).map(Opened::into_store)
}

/// Opens a store from a URL: `memory://`, `file:///path/store.redb`,
/// `redis://[user:password@]host:port[/db]` (`rediss://` for TLS),
/// `consul://host:port[,host:port...]`, `etcd://host:port[,...]`
/// (`consul+https://`, `etcd+https://`), with options as query parameters
/// (`?timeout=5s`, `?lock_ttl=15s`, `?history=10000`). Each backend takes
/// only the options it uses (docs/options.md has the table); another is
/// [`Error::InvalidArgument`] naming the ones it takes.
///
/// Unlike [`create_store`], it checks that a network store answers before
/// it returns (one endpoint answering is enough), within the `timeout`:
/// [`Error::Unreachable`] naming the endpoints otherwise, and
/// [`Error::PermissionDenied`] for etcd credentials it refuses.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvmesh::Result<()> {
/// let store = kvmesh::connect("memory://?history=100").await?;
/// assert!(store.get_range("").await?.is_empty());
/// assert!(kvmesh::connect("memory://?colour=blue").await.is_err()); // unknown options are refused
/// # Ok(())
/// # }
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    let opened = if url.starts_with("file:") {
        // Reading a file store back is disk work: off the async threads.
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || Opened::from_url(&url))
            .await
            .map_err(|e| Error::InvalidArgument(format!("opening the store failed: {e}")))??
    } else {
        Opened::from_url(url)?
    };
    opened.check_reachable().await?;
    Ok(opened.into_store())
}

/// Opens a store from a URL like [`connect`], without the check: nothing
/// is sent until the first call, so it works while the store is still
/// down (a service that starts before its store, a test of failures).
///
/// ```
/// let store = kvmesh::connect_lazy("etcd://127.0.0.1:1")?; // nothing listens there
/// # Ok::<(), kvmesh::Error>(())
/// ```
pub fn connect_lazy(url: &str) -> Result<Arc<dyn Store>> {
    Opened::from_url(url).map(Opened::into_store)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TLS settings in a build without the `tls` feature are refused,
    /// naming the feature (run by the `--no-default-features` tests).
    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_without_the_feature_names_it() {
        let config = Config::default().with_tls(crate::TlsConfig::default());
        let refused = create_store(Backend::Etcd, &["127.0.0.1:1"], config).unwrap_err();
        assert!(matches!(refused, Error::Unsupported { .. }), "{refused:?}");
        assert!(
            refused.to_string().contains("`tls` cargo feature"),
            "{refused}"
        );
    }

    #[cfg(feature = "file")]
    #[test]
    fn file_takes_one_path() {
        for endpoints in [&[][..], &["a.redb", "b.redb"][..], &[""][..]] {
            let refused = create_store(Backend::File, endpoints, Config::default()).unwrap_err();
            assert!(matches!(refused, Error::InvalidArgument(_)), "{refused}");
        }
    }

    #[test]
    fn memory_takes_no_endpoints() {
        let refused = create_store(Backend::Memory, &["h:1"], Config::default()).unwrap_err();
        assert!(matches!(refused, Error::InvalidArgument(_)), "{refused:?}");
    }
}
