//! The reporter task: every event to every sink, until the run ends.

use crate::record::events::Event;
use crate::record::result::CellResult;
use crate::report::sink::{RunState, Sink};

/// Drive the sinks until the run ends; returns the finished cells in the plan's order and the last
/// error a sink met writing (the files on disk are then incomplete).
pub async fn reporter(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    mut run: RunState,
    mut sinks: Vec<Box<dyn Sink>>,
) -> (Vec<CellResult>, Option<std::io::Error>) {
    let mut write_error = None;
    while let Some(ev) = rx.recv().await {
        match &ev {
            Event::RunStarted { run_dir, order, .. } => {
                run.run_dir = run_dir.clone();
                run.order = order.clone();
            }
            Event::CellFinished { result } => run.insert((**result).clone()),
            _ => {}
        }
        let mut this_event = None;
        for s in sinks.iter_mut() {
            if let Err(e) = s.event(&ev, &run) {
                this_event = Some(e);
            }
        }
        // Each write replaces whole files, so the latest outcome decides.
        if matches!(ev, Event::CellFinished { .. } | Event::RunFinished) {
            if let Some(e) = &this_event {
                crate::report::terminal::line(&format!("{e}"));
            }
            write_error = this_event;
        }
        if matches!(ev, Event::RunFinished) {
            break;
        }
    }
    (run.cells, write_error)
}
