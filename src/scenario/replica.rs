//! The replicas a scenario drives: each `--admin` URL resolved to its
//! addresses, and `GET`/`PUT /admin/workload` on each.
use std::{collections::BTreeSet, fmt, net::SocketAddr, time::Duration};

use poem_openapi::types::{ParseFromJSON, ToJSON};
use reqwest::{header, Certificate, Client, StatusCode, Url};
use serde_json::Value;

use crate::workload::Settings;

/// How long one request to a replica may take before it counts as refused.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The credentials and trust every request carries.
#[derive(Clone, Default)]
pub struct Access {
    /// `Authorization` header value, if any (`Bearer …` or `Basic …`).
    pub authorization: Option<header::HeaderValue>,
    /// The CA that signs the replicas' certificates, for https.
    pub ca: Option<Certificate>,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("ca", &self.ca.is_some())
            .finish()
    }
}

/// One replica: one address of an `--admin` URL.
#[derive(Debug, Clone)]
pub struct Replica {
    /// How messages name it: the URL, and the address when its host named several.
    pub name: String,
    endpoint: Url,
    client: Client,
}

impl fmt::Display for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Every replica `urls` name: a host that resolves to several addresses (a
/// headless Service) is one replica per address, with the host kept in the
/// Host header and TLS's server name. `localhost`, as 127.0.0.1 and ::1, is
/// one replica.
pub async fn resolve(urls: &[Url], access: &Access) -> Result<Vec<Replica>, String> {
    let mut replicas = Vec::new();
    for url in urls {
        let endpoint = endpoint_of(url);
        let shown = url.as_str().trim_end_matches('/');
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(format!("--admin {shown}: the URL names no host"));
        };
        if host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok()
        {
            replicas.push(Replica {
                name: shown.to_string(),
                endpoint,
                client: client(access, None)?,
            });
            continue;
        }
        let addresses = replicas_of(
            tokio::net::lookup_host((host, port))
                .await
                .map_err(|err| format!("--admin {shown}: cannot resolve {host}: {err}"))?,
        );
        let several = addresses.len() > 1;
        for address in addresses {
            replicas.push(Replica {
                name: if several {
                    format!("{shown} ({address})")
                } else {
                    shown.to_string()
                },
                endpoint: endpoint.clone(),
                client: client(access, Some((host, address)))?,
            });
        }
    }
    Ok(replicas)
}

/// The replicas among a name's addresses: each once, in order, but not `::1`
/// beside an IPv4 loopback address (`localhost`): one machine, and a server
/// on 0.0.0.0 does not answer on `::1`.
fn replicas_of(addresses: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let addresses: BTreeSet<SocketAddr> = addresses.into_iter().collect();
    let local_ipv4 = addresses
        .iter()
        .any(|address| address.is_ipv4() && address.ip().is_loopback());
    addresses
        .into_iter()
        .filter(|address| !(local_ipv4 && address.is_ipv6() && address.ip().is_loopback()))
        .collect()
}

/// `/admin/workload` under the URL's path.
fn endpoint_of(url: &Url) -> Url {
    let mut endpoint = url.clone();
    let path = format!("{}/admin/workload", url.path().trim_end_matches('/'));
    endpoint.set_path(&path);
    endpoint.set_query(None);
    endpoint
}

fn client(access: &Access, pinned: Option<(&str, SocketAddr)>) -> Result<Client, String> {
    let mut builder = Client::builder().timeout(REQUEST_TIMEOUT);
    if let Some(authorization) = &access.authorization {
        let mut headers = header::HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.clone());
        builder = builder.default_headers(headers);
    }
    if let Some(ca) = &access.ca {
        builder = builder.add_root_certificate(ca.clone());
    }
    if let Some((host, address)) = pinned {
        builder = builder.resolve(host, address);
    }
    builder
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))
}

impl Replica {
    /// The settings in force (`GET /admin/workload`).
    pub async fn settings(&self) -> Result<Settings, String> {
        self.answer(self.client.get(self.endpoint.clone())).await
    }

    /// Applies `change` (`PUT /admin/workload`): the settings now in force, or
    /// why the replica refused.
    pub async fn change(&self, change: &Value) -> Result<Settings, String> {
        self.answer(self.client.put(self.endpoint.clone()).json(change))
            .await
    }

    /// Puts `settings` back whole.
    pub async fn restore(&self, settings: &Settings) -> Result<Settings, String> {
        self.change(&settings.to_json().unwrap_or_default()).await
    }

    async fn answer(&self, request: reqwest::RequestBuilder) -> Result<Settings, String> {
        let response = request.send().await.map_err(|err| describe(&err))?;
        let status = response.status();
        let body: Value = match response.text().await {
            Ok(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
            Err(err) => return Err(describe(&err)),
        };
        match status {
            StatusCode::OK => Settings::parse_from_json(Some(body.clone()))
                .map_err(|_| format!("the answer is not the workload settings: {body}")),
            StatusCode::UNAUTHORIZED => Err(
                "401 Unauthorized: the replica wants credentials (--token-file, or \
                 --basic-auth-user and --basic-auth-password-file)"
                    .to_string(),
            ),
            _ => match body.get("error").and_then(Value::as_str) {
                Some(error) => Err(format!("{status}: {error}")),
                None => Err(format!("{status}")),
            },
        }
    }
}

/// A transport error with its causes, which reqwest keeps in its source chain.
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|address| address.parse().unwrap())
            .collect()
    }

    #[test]
    fn each_address_of_a_name_is_a_replica_once_and_localhost_is_one() {
        let pods = addresses(&[
            "10.0.0.7:8081",
            "10.0.0.5:8081",
            "10.0.0.7:8081",
            "10.0.0.6:8081",
        ]);
        assert_eq!(
            replicas_of(pods),
            addresses(&["10.0.0.5:8081", "10.0.0.6:8081", "10.0.0.7:8081"])
        );
        assert_eq!(
            replicas_of(addresses(&["[::1]:8081", "127.0.0.1:8081"])),
            addresses(&["127.0.0.1:8081"])
        );
        // ::1 alone, or two IPv4 loopback addresses, stay as they are.
        assert_eq!(
            replicas_of(addresses(&["[::1]:8081"])),
            addresses(&["[::1]:8081"])
        );
        assert_eq!(
            replicas_of(addresses(&["127.0.0.2:8081", "127.0.0.1:8081"])),
            addresses(&["127.0.0.1:8081", "127.0.0.2:8081"])
        );
        assert_eq!(
            replicas_of(addresses(&["[fd00::5]:8081", "10.0.0.5:8081"])),
            addresses(&["10.0.0.5:8081", "[fd00::5]:8081"])
        );
    }

    #[test]
    fn the_admin_endpoint_is_under_the_urls_path() {
        for (url, endpoint) in [
            ("http://a:8081", "http://a:8081/admin/workload"),
            ("http://a:8081/", "http://a:8081/admin/workload"),
            ("https://a/myapp/?x=1", "https://a/myapp/admin/workload"),
        ] {
            assert_eq!(endpoint_of(&Url::parse(url).unwrap()).as_str(), endpoint);
        }
    }
}
