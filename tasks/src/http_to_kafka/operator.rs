use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt as _;

use super::{
    HttpToKafkaConfig,
    fetch::{Fetched, get_with_retries},
    route,
};
use crate::{ConfigError, Operator, TaskContext, TaskError, TaskResult, kafka};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pages fetched and routed at once, ahead of the one being sent.
const PAGES_AHEAD: usize = 2;

/// GETs a URL (or `pages` pages of it) and produces the selected records to Kafka; succeeds
/// only once the brokers have acknowledged every record. Each page is routed whole before
/// any of its records is sent. Pages are fetched and routed two at a time ahead of the one
/// being sent, which goes out while the page before it is acknowledged. The result holds
/// `records`, `topics` (count per topic), `created_topics`, `status`, `pages` and
/// `elapsed_ms`.
pub(crate) struct HttpToKafkaOperator {
    config: HttpToKafkaConfig,
}

/// One page, fetched and routed whole.
struct Page {
    status: u16,
    records: Vec<route::Routed>,
}

impl HttpToKafkaOperator {
    pub(crate) fn new(config: HttpToKafkaConfig) -> Self {
        Self { config }
    }

    /// GETs page `page` (the URL as written when the task has one page) and routes every
    /// record of it.
    async fn fetch_and_route(&self, ctx: &TaskContext, page: u32) -> Result<Page, TaskError> {
        let config = &self.config;
        let url = if config.pages > 1 {
            page_url(&config.url, &config.page_param, page)?
        } else {
            config.url.clone()
        };
        ctx.log(&format!("GET {url}"));
        let timeout = config
            .request_timeout
            .map_or(DEFAULT_TIMEOUT, |t| t.as_duration());
        let fetched =
            get_with_retries(&url, &config.headers, timeout, config.http_retries, ctx).await?;
        let Fetched {
            status,
            body,
            attempts,
        } = fetched;
        ctx.log(&format!(
            "Response {status} ({} bytes, {attempts} attempt(s))",
            body.len()
        ));
        let routing = config.clone();
        let routing_started = Instant::now();
        let records = tokio::task::spawn_blocking(move || route::route(&routing, &body))
            .await
            .map_err(|e| TaskError::Failed(format!("routing records panicked: {e}")))?
            .map_err(|e| TaskError::Failed(e.to_string()))?;
        ctx.log(&format!(
            "Selected and routed {} records in {} ms",
            records.len(),
            routing_started.elapsed().as_millis()
        ));
        Ok(Page { status, records })
    }
}

#[async_trait]
impl Operator for HttpToKafkaOperator {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        let config = &self.config;
        let started = Instant::now();
        let brokers = ctx.connections.kafka_brokers(config.brokers.as_deref());
        let delivery = kafka::Delivery::new(
            &brokers,
            config.create_topics,
            config.partitions,
            config.delivery_timeout,
        );
        let pages = config.pages.max(1);
        let mut delivered = kafka::Delivered::default();
        // Pages are fetched and routed up to PAGES_AHEAD at once, and come out in order; a
        // page goes out as soon as it is routed, while the page before it is acknowledged.
        let mut routed = futures::stream::iter(1..=pages)
            .map(|number| self.fetch_and_route(ctx, number))
            .buffered(PAGES_AHEAD);
        let mut status = None;
        // The page before, sent and not yet acknowledged.
        let mut unacknowledged = kafka::InFlight::default();
        loop {
            let earlier = std::mem::take(&mut unacknowledged).acknowledged(ctx, &delivery);
            let (done, next) = tokio::join!(earlier, routed.next());
            delivered.add(done?);
            let Some(page) = next.transpose()? else {
                break;
            };
            status.get_or_insert(page.status);
            unacknowledged = kafka::send(ctx, &delivery, &page.records).await?;
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        ctx.log(&format!(
            "Produced {} records of {pages} page(s) to {brokers} in {elapsed_ms} ms: {}",
            delivered.records(),
            delivered
                .counts
                .iter()
                .map(|(t, n)| format!("{t}={n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut result = delivered.result(elapsed_ms);
        result.insert("status".into(), status.unwrap_or_default().into());
        result.insert("pages".into(), pages.into());
        Ok(result)
    }
}

/// `url` with `param=page` set in its query string (replacing any value it had).
fn page_url(url: &str, param: &str, page: u32) -> Result<String, ConfigError> {
    let mut parsed =
        reqwest::Url::parse(url).map_err(|e| ConfigError::new("url", format!("{url:?}: {e}")))?;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(name, _)| name != param)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(param, &page.to_string());
    Ok(parsed.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_number_is_set_in_the_query_replacing_one_there() {
        assert_eq!(
            page_url("http://h/api/?results=10&page=7&seed=s", "page", 2).unwrap(),
            "http://h/api/?results=10&seed=s&page=2"
        );
        assert_eq!(
            page_url("http://h/api/", "p", 3).unwrap(),
            "http://h/api/?p=3"
        );
        assert!(page_url("not a url", "page", 1).is_err());
    }
}
