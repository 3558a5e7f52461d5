//! Experiment runs linked by their own attributes: a run whose root span carries
//! `vigil.experiment.id` and `vigil.dataset.item.id` is linked to that item of that experiment
//! as its batch is stored, so a runner needs no second call (`POST …/items` does the same).
//!
//! The link is made after the store took the batch and before the batcher moves past it in the
//! WAL: a crash in between replays the batch, which links again (a link already in place
//! changes nothing), so no run that was acknowledged misses its link. A link that cannot be
//! made (no such experiment in the project, no such item in its dataset version) is logged and
//! skipped: the trace itself is stored either way.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use vigil_collector::sink::{Sink, SinkError};
use vigil_eval::{
    Evaluation, StoreError,
    experiments::{Link, MAX_LINKS_PER_REQUEST},
};
use vigil_schemas::IngestBatch;

/// The root-span attribute naming the experiment.
pub const EXPERIMENT_ATTRIBUTE: &str = "vigil.experiment.id";
/// The root-span attribute naming the dataset item.
pub const ITEM_ATTRIBUTE: &str = "vigil.dataset.item.id";

/// A sink that links experiment runs once `inner` stored them.
pub struct LinkingSink {
    inner: Arc<dyn Sink>,
    evaluation: Arc<Evaluation>,
}

impl LinkingSink {
    pub fn new(inner: Arc<dyn Sink>, evaluation: Arc<Evaluation>) -> LinkingSink {
        LinkingSink { inner, evaluation }
    }
}

/// The links the batch's root spans ask for, by project and experiment.
fn links_of(batch: &IngestBatch) -> BTreeMap<(String, String), Vec<Link>> {
    let mut links: BTreeMap<(String, String), Vec<Link>> = BTreeMap::new();
    for span in batch.spans.iter().filter(|s| s.is_root()) {
        if let (Some(experiment), Some(item)) = (
            span.attribute(EXPERIMENT_ATTRIBUTE),
            span.attribute(ITEM_ATTRIBUTE),
        ) {
            links
                .entry((span.project_id.clone(), experiment.to_string()))
                .or_default()
                .push(Link {
                    item_id: item.to_string(),
                    trace_id: span.trace_id.clone(),
                });
        }
    }
    links
}

/// Links them; a link refused is logged and skipped, a failure to write the log is an error
/// (the batch is written again, and linked again).
async fn link(
    evaluation: &Evaluation,
    asked: BTreeMap<(String, String), Vec<Link>>,
) -> Result<(), SinkError> {
    for ((project, experiment), links) in asked {
        for chunk in links.chunks(MAX_LINKS_PER_REQUEST) {
            match evaluation.link(&project, &experiment, chunk.to_vec()).await {
                Ok(_) => continue,
                Err(StoreError::Eval(_)) => {}
                Err(e) => return Err(log_error(e)),
            }
            // One refused link refuses its chunk: the others are linked one by one.
            for one in chunk {
                match evaluation
                    .link(&project, &experiment, vec![one.clone()])
                    .await
                {
                    Ok(_) => {}
                    Err(StoreError::Eval(refused)) => {
                        tracing::warn!(project, experiment, trace_id = %one.trace_id, error = %refused, "a run names an experiment or item that does not exist; not linked");
                    }
                    Err(e) => return Err(log_error(e)),
                }
            }
        }
    }
    Ok(())
}

/// The experiment log could not be written: the batch is written again.
fn log_error(e: impl std::fmt::Display) -> SinkError {
    SinkError::Io {
        path: vigil_eval::experiments::LOG_FILE.into(),
        source: std::io::Error::other(e.to_string()),
    }
}

#[async_trait]
impl Sink for LinkingSink {
    async fn write(&self, batch: Arc<IngestBatch>) -> Result<(), SinkError> {
        self.inner.write(batch.clone()).await?;
        let asked = links_of(&batch);
        if asked.is_empty() {
            return Ok(());
        }
        link(&self.evaluation, asked).await
    }
}
