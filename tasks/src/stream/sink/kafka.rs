//! The Kafka sink: records (or window results, once their window closes) produced to a topic.

use mongodb::bson::{Bson, Document};
use rdkafka::message::OwnedHeaders;

use super::super::outbox::Outbox;
use crate::{
    RecordError, TaskError,
    jq::{self, JqFilter, Val},
    kafka::{Outgoing, RecordTopics, TopicSpec},
};

pub(crate) struct KafkaSink {
    topics: RecordTopics,
    key: Option<JqFilter>,
}

impl KafkaSink {
    pub(crate) fn new(topic: TopicSpec, key: Option<JqFilter>) -> Self {
        Self {
            topics: RecordTopics::new(topic),
            key,
        }
    }

    /// The topic and key of every record, or the first record's problem (nothing is sent
    /// then: the source record is dead-lettered whole).
    pub(crate) fn route(&mut self, records: Vec<Val>) -> Result<Vec<Outgoing>, RecordError> {
        records
            .into_iter()
            .map(|record| {
                let topic = self.topics.topic_of(&record)?;
                let key = self
                    .key
                    .as_ref()
                    .map(|k| k.one(record.clone()).map(|v| jq::as_text(&v)))
                    .transpose()?;
                Ok(Outgoing {
                    topic,
                    key,
                    payload: jq::to_json_bytes(&record).into(),
                })
            })
            .collect()
    }

    pub(crate) fn send(
        &self,
        outgoing: Vec<Outgoing>,
        outbox: &mut Outbox,
    ) -> Result<usize, TaskError> {
        let count = outgoing.len();
        for record in outgoing {
            outbox.send(
                &record.topic,
                record.key.as_deref(),
                &record.payload,
                OwnedHeaders::new(),
            )?;
        }
        Ok(count)
    }

    /// Produces the result of a window that just closed, keyed by its id: the window
    /// document without its internal `_state` (accumulators and offsets).
    pub(crate) fn window_closed(
        &self,
        id: &str,
        mut document: Document,
        outbox: &mut Outbox,
    ) -> Result<(), TaskError> {
        document.remove("_state");
        let json = serde_json::to_string(&Bson::Document(document).into_relaxed_extjson())
            .map_err(|e| TaskError::Failed(format!("window {id}: {e}")))?;
        let record = jq::parse_json(json.as_bytes())
            .map_err(|e| TaskError::Failed(format!("window {id}: {e}")))?;
        let topic = self
            .topics
            .spec()
            .topic_of(&record)
            .map_err(|e| TaskError::Failed(format!("window {id}: {e}")))?;
        outbox.send(&topic, Some(id), json.as_bytes(), OwnedHeaders::new())
    }
}
