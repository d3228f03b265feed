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

    /// Waits until the brokers have acknowledged every record sent so far; how many that was.
    pub(super) async fn acknowledged(&mut self) -> Result<usize, TaskError> {
        let deliveries = std::mem::take(&mut self.deliveries);
        let count = deliveries.len();
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(TaskError::Failed(format!(
                        "a produced record was not acknowledged: {e}"
                    )));
                }
                Err(_) => return Err(TaskError::Failed("the producer stopped".into())),
            }
        }
        Ok(count)
    }
}
