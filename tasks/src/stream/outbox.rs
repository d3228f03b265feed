//! Records a stream task produces (results for a Kafka sink, dead letters): sent at once,
//! acknowledged before the next offset commit.

use rdkafka::{
    message::OwnedHeaders,
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};

use crate::TaskError;

pub(super) struct Outbox {
    producer: FutureProducer,
    deliveries: Vec<DeliveryFuture>,
}

impl Outbox {
    pub(super) fn new(producer: FutureProducer) -> Self {
        Self {
            producer,
            deliveries: Vec::new(),
        }
    }

    /// Hands one record to the producer; [`Outbox::acknowledged`] waits for it.
    pub(super) fn send(
        &mut self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), TaskError> {
        let mut record = FutureRecord::to(topic).payload(payload).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| TaskError::Failed(format!("cannot produce to {topic}: {e}")))?;
        self.deliveries.push(delivery);
        Ok(())
    }

    /// The acknowledgements of every record sent so far, to wait for apart from the outbox
    /// ([`Acks::all`]).
    pub(super) fn take(&mut self) -> Acks {
        Acks(std::mem::take(&mut self.deliveries))
    }
}

/// Acknowledgements to come of records an [`Outbox`] sent.
pub(super) struct Acks(Vec<DeliveryFuture>);

impl Acks {
    /// Waits until the brokers have acknowledged every record; how many there were.
    pub(super) async fn all(self) -> Result<usize, TaskError> {
        let count = self.0.len();
        crate::kafka::acknowledge(self.0).await?;
        Ok(count)
    }
}
