//! The module's tokio runtime; blocking on it from Python threads with the
//! GIL released; and the glue that lets asyncio await futures run on it.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{self, ContextExt};
use pyo3_async_runtimes::TaskLocals;
use tokio::runtime::Runtime;

/// How often a blocked call looks for Ctrl-C: Python runs signal handlers
/// only when the main thread holds the GIL, which it does not while it
/// waits in Rust.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// The runtime and the process that built it. A forked child (Airflow
/// workers, multiprocessing) inherits the memory but not the threads, so
/// it builds its own; the parent's is leaked there (dropping it would wait
/// for threads that do not exist in the child).
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// This process's runtime (two worker threads), built on first use.
pub fn runtime() -> &'static Runtime {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, rt)) = *slot {
        if owner == pid {
            return rt;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("psrp-client")
        .enable_all()
        .build()
        // Only fails when the OS refuses threads or an epoll instance:
        // nothing of this module can work then.
        .expect("psrp_client: cannot start the tokio runtime");
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    rt
}

/// Runs `fut` to its end with the GIL released, looking for signals every
/// [`SIGNAL_POLL`]. A signal handler's exception (KeyboardInterrupt) is
/// returned at once; the unfinished future is then dropped inside the
/// runtime, so that what it owned (a command, a shell) is released by the
/// tasks its drop spawns.
pub fn wait<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut fut = Box::pin(fut);
    match wait_pinned(py, &mut fut) {
        Ok(v) => Ok(v),
        Err(e) => {
            let _inside = runtime().enter();
            drop(fut);
            Err(e)
        }
    }
}

/// [`wait`] on a pinned future that the caller keeps when a signal comes
/// (to let it finish, or to clean up after it).
pub fn wait_pinned<F>(py: Python<'_>, fut: &mut Pin<Box<F>>) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime();
    loop {
        // The timer is made inside the runtime (it needs its clock).
        let step = py.detach(|| {
            rt.block_on(async { tokio::time::timeout(SIGNAL_POLL, fut.as_mut()).await })
        });
        match step {
            Ok(v) => return Ok(v),
            Err(_) => py.check_signals()?,
        }
    }
}

/// Runs `fut` to its end with the GIL released, deaf to signals (closing:
/// the shell must be deleted; the future is bounded by its own timeouts).
pub fn wait_uninterruptible<F>(py: Python<'_>, fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime();
    py.detach(|| rt.block_on(fut))
}

/// Spawns a task on the runtime (clean-up after an interrupted call).
pub fn spawn<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    runtime().spawn(fut);
}

/// An asyncio awaitable for a future run on this module's runtime.
/// Cancelling the asyncio future drops the Rust one.
pub fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    generic::future_into_py::<ClientRuntime, _, _>(py, fut)
}

/// [`runtime`] for pyo3-async-runtimes.
struct ClientRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl generic::Runtime for ClientRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        runtime().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        runtime().spawn_blocking(f)
    }
}

impl ContextExt for ClientRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}
