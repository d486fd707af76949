//! [`Gate`]: who may write to the terminal, the printer thread or the line editor, so
//! that output never lands on a prompt being drawn or a line being submitted.
//!
//! rustyline's external printer picks its path when called: while the editor is in raw
//! mode it hands the text to the editor, which prints it above the prompt; otherwise it
//! writes to the terminal at once. The editor turns raw mode on before it draws the
//! prompt and off once Enter (or Ctrl-C, Ctrl-D) ends the line, so a text handed over
//! just as either happens was written straight onto the new prompt or glued after the
//! submitted line. The gate closes both windows: between lines the printer thread
//! writes directly while holding the terminal, which the reader takes before it starts
//! the editor; the printer hands text to the editor only once the editor has reached
//! raw mode (it has asked for the prompt's text) and stops before the editor leaves it
//! (the line's validator or the Ctrl-C / Ctrl-D handler ran). In between, text waits.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// No line editor running: the printer writes directly.
const BETWEEN: u8 = 0;
/// The reader is starting the editor, which has not reached raw mode yet: text waits.
const STARTING: u8 = 1;
/// The editor is in raw mode and reading: text goes through it, above the prompt.
const EDITING: u8 = 2;
/// The editor is ending the line and about to leave raw mode: text waits.
const CLOSING: u8 = 3;

/// How long a side waits for the other to release the terminal before going on
/// anyway. The printer holds it across a hand-over to the editor, which blocks while the
/// editor is busy elsewhere (its completion list, or ending a line); past this the
/// hand-over has already chosen the editor's path, so going on is safe.
const HOLD_LIMIT: Duration = Duration::from_millis(250);
/// How long text waits for the editor to reach raw mode or return before it is handed
/// to the printer regardless, so that a missed hook delays output instead of losing it.
const WAIT_LIMIT: Duration = Duration::from_secs(2);
/// Poll step while text waits for the editor.
const STEP: Duration = Duration::from_millis(2);

/// How [`Gate::print`] lets a text out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// Straight to the terminal: no line editor runs.
    Terminal,
    /// Through the line editor's external printer, above the prompt.
    Editor,
}

/// Shared by the reader thread (and the editor hooks it runs) and the printer thread.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Held by the printer while it writes or hands text over, and by the reader while
    /// it marks the editor as starting.
    terminal: Mutex<()>,
    phase: AtomicU8,
}

impl Gate {
    /// Reader thread, right before it starts the editor.
    pub(crate) fn starting(&self) {
        let _terminal = self.hold();
        self.phase.store(STARTING, Ordering::SeqCst);
    }

    /// From inside the editor once it is in raw mode (it asks for the prompt's text
    /// then, and again at every redraw). Never blocks: the printer may hold the terminal
    /// while it waits for this very editor to take its text.
    pub(crate) fn editing(&self) {
        let _ = self.phase.compare_exchange(STARTING, EDITING, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// From inside the editor when the line ends, still in raw mode: waits for a hand-over
    /// in progress (bounded), then makes text wait until the reader has the line.
    pub(crate) fn closing(&self) {
        let _terminal = self.hold();
        self.phase.store(CLOSING, Ordering::SeqCst);
    }

    /// Reader thread, once the editor returned.
    pub(crate) fn ended(&self) {
        self.phase.store(BETWEEN, Ordering::SeqCst);
    }

    /// Printer thread: runs `write` for one text, holding the terminal, with the way to
    /// write it: [`Via::Terminal`] when no editor runs, [`Via::Editor`] (the external
    /// printer) while the editor reads. Waits while the editor starts or ends a line, at
    /// most [`WAIT_LIMIT`].
    pub(crate) fn print(&self, write: impl FnOnce(Via)) {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let terminal = self.hold();
            match self.phase.load(Ordering::SeqCst) {
                BETWEEN => return write(Via::Terminal),
                EDITING => return write(Via::Editor),
                _ if Instant::now() >= deadline => return write(Via::Editor),
                _ => {
                    drop(terminal);
                    std::thread::sleep(STEP);
                }
            }
        }
    }

    /// The terminal, or nothing after [`HOLD_LIMIT`] (see there).
    fn hold(&self) -> Option<MutexGuard<'_, ()>> {
        let deadline = Instant::now() + HOLD_LIMIT;
        loop {
            match self.terminal.try_lock() {
                Ok(guard) => return Some(guard),
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    return Some(PoisonError::into_inner(p));
                }
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(std::sync::TryLockError::WouldBlock) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn printed(gate: &Gate) -> Option<Via> {
        let mut how = None;
        gate.print(|via| how = Some(via));
        how
    }

    #[test]
    fn text_takes_the_path_of_the_phase() {
        let gate = Gate::default();
        assert_eq!(printed(&gate), Some(Via::Terminal));
        gate.starting();
        gate.editing();
        assert_eq!(printed(&gate), Some(Via::Editor));
        // Redraws call `editing` again; only `starting` arms it.
        gate.closing();
        gate.editing();
        gate.ended();
        gate.editing();
        assert_eq!(printed(&gate), Some(Via::Terminal));
    }

    #[test]
    fn text_waits_while_the_editor_starts_or_ends() {
        for before in [Gate::starting as fn(&Gate), |g: &Gate| {
            g.starting();
            g.editing();
            g.closing();
        }] {
            let gate = Arc::new(Gate::default());
            before(&gate);
            let done = Arc::new(AtomicUsize::new(0));
            let printer = {
                let (gate, done) = (gate.clone(), done.clone());
                std::thread::spawn(move || {
                    gate.print(|via| {
                        done.store(1 + usize::from(via == Via::Editor), Ordering::SeqCst)
                    });
                })
            };
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(done.load(Ordering::SeqCst), 0, "printed while the editor changed modes");
            gate.ended();
            printer.join().unwrap();
            assert_eq!(done.load(Ordering::SeqCst), 1);
        }
    }
}
