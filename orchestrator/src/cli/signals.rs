//! SIGINT, SIGTERM and SIGHUP as events of a run.

use crate::record::verdict::exit;

/// SIGINT, SIGTERM and SIGHUP: the first stops scheduling, shuts VMs down and still
/// writes results; the second kills every process group kmatrix started and leaves.
pub fn on_signals(cancel: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ];
    let mut streams: Vec<_> = kinds.iter().filter_map(|k| signal(*k).ok()).collect();
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let any = futures_like_select(&mut streams).await;
            if !any {
                return;
            }
            seen += 1;
            if seen == 1 {
                eprintln!("kmatrix: interrupted; stopping (again to kill everything)");
                let _ = cancel.send(true);
            } else {
                crate::host::proc::kill_all();
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });
}

/// Wait for the first of several signal streams (false if all ended).
async fn futures_like_select(streams: &mut [tokio::signal::unix::Signal]) -> bool {
    use std::future::poll_fn;
    use std::task::Poll;
    poll_fn(|cx| {
        let mut open = false;
        for s in streams.iter_mut() {
            match s.poll_recv(cx) {
                Poll::Ready(Some(())) => return Poll::Ready(true),
                Poll::Ready(None) => {}
                Poll::Pending => open = true,
            }
        }
        if open {
            Poll::Pending
        } else {
            Poll::Ready(false)
        }
    })
    .await
}
