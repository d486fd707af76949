//! The interactive loop: rustyline with history (`PITAYACLI_HISTORY_PATH`, default
//! `~/.pitayacli_history`, as Go's CLI) and completion of commands and routes.
//!
//! The editor blocks, so it runs on its own thread and hands each line to the async
//! shell, waiting for the command and its output to finish before prompting again. On a
//! terminal, everything is written through the editor's external printer (see
//! [`Out::prompt`]): a push that arrives while the user types is shown above the prompt,
//! and the prompt is redrawn with the partly typed line. The editor tells the printer's
//! [`Gate`] when it has reached raw mode (it asks [`GatedPrompt`] for the prompt's text)
//! and when a line ends (the validator, Ctrl-C, Ctrl-D), so that a push arriving right
//! after Enter is written before the next prompt or above it, never onto it.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use anyhow::{Context as _, Result};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{
    Cmd, ConditionalEventHandler, Context, Editor, Event, EventContext, EventHandler, Helper,
    KeyEvent, Prompt, RepeatCount,
};
use tokio::sync::{mpsc, oneshot};

use crate::command::NAMES;
use crate::gate::Gate;
use crate::output::Out;
use crate::schema::Schema;
use crate::shell::{Flow, RouteList, Settings, Shell};

/// Commands whose first argument is a route.
const ROUTE_COMMANDS: [&str; 5] = ["request", "notify", "push", "types", "waitpush"];

/// The prompt's text.
const PROMPT: &str = "pitaya> ";

struct CliHelper {
    routes: RouteList,
    gate: Arc<Gate>,
}

/// The prompt, which tells the gate that the editor is in raw mode: rustyline asks for
/// its text only once it is (and again at each redraw).
struct GatedPrompt(Arc<Gate>);

impl Prompt for GatedPrompt {
    fn raw(&self) -> &str {
        self.0.editing();
        PROMPT
    }
}

/// Ctrl-C, and Ctrl-D on an empty line, end the line without the validator: tell the
/// gate as Enter does, then let the key do what it always does.
struct LineEndKey {
    gate: Arc<Gate>,
    /// Ctrl-D ends only an empty line (elsewhere it deletes).
    only_when_empty: bool,
}

impl ConditionalEventHandler for LineEndKey {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext<'_>) -> Option<Cmd> {
        if !self.only_when_empty || ctx.line().is_empty() {
            self.gate.closing();
        }
        None
    }
}

impl Completer for CliHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let line = line.get(..pos).unwrap_or(line);
        let start = line.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = line.get(start..).unwrap_or("");
        let before: Vec<&str> = line.get(..start).unwrap_or("").split_whitespace().collect();
        let pair = |s: &str| Pair { display: s.to_owned(), replacement: format!("{s} ") };
        let candidates = match before.as_slice() {
            [] => NAMES.iter().filter(|n| n.starts_with(word)).map(|n| pair(n)).collect(),
            [cmd] if ROUTE_COMMANDS.contains(cmd) => self
                .routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter(|r| r.starts_with(word))
                .map(|r| pair(r))
                .collect(),
            _ => Vec::new(),
        };
        Ok((start, candidates))
    }
}

impl Hinter for CliHelper {
    type Hint = String;
}

impl Highlighter for CliHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for CliHelper {
    /// Every line is accepted; rustyline calls this on Enter while still in raw mode, the
    /// last moment before the line ends.
    fn validate(&self, _: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        self.gate.closing();
        Ok(ValidationResult::Valid(None))
    }
}
impl Helper for CliHelper {}

fn history_path() -> Option<PathBuf> {
    match std::env::var_os("PITAYACLI_HISTORY_PATH") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pitayacli_history")),
    }
}

/// Prompts until `quit` or end of input.
pub(crate) fn run(
    runtime: &tokio::runtime::Runtime,
    settings: Settings,
    schema: Schema,
    pretty: bool,
) -> Result<()> {
    let mut editor: Editor<CliHelper, FileHistory> =
        Editor::new().context("starting the line editor")?;
    // rustyline refuses a printer unless it edits on a terminal (stdin and stdout ttys,
    // a TERM it supports); otherwise it reads plain lines, and results are plain output
    // as in file mode.
    let gate = Arc::new(Gate::default());
    let out = match editor.create_external_printer() {
        Ok(printer) => Out::prompt(pretty, printer, gate.clone()),
        Err(_) => Out::std(pretty),
    };
    let mut shell = Shell::new(settings, schema, out.clone());
    editor.set_helper(Some(CliHelper { routes: shell.route_list(), gate: gate.clone() }));
    for (key, only_when_empty) in [(KeyEvent::ctrl('C'), false), (KeyEvent::ctrl('D'), true)] {
        let handler = LineEndKey { gate: gate.clone(), only_when_empty };
        editor.bind_sequence(key, EventHandler::Conditional(Box::new(handler)));
    }
    let prompt = GatedPrompt(gate.clone());
    let history = history_path();
    if let Some(path) = &history {
        // No history yet is the normal first run.
        let _ = editor.load_history(path);
    }
    out.line("Pitaya REPL Client (type help)");
    out.flush();
    let (lines, mut incoming) = mpsc::channel::<(String, oneshot::Sender<Flow>)>(1);
    let printed = out.clone();
    let reader = std::thread::spawn(move || {
        loop {
            gate.starting();
            let read = editor.readline(&prompt);
            gate.ended();
            match read {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    let (done, flow) = oneshot::channel();
                    if lines.blocking_send((line, done)).is_err()
                        || flow.blocking_recv() != Ok(Flow::Continue)
                    {
                        break;
                    }
                    // The command's output goes before the next prompt, not over it.
                    printed.flush();
                }
                Err(ReadlineError::Interrupted) => continue,
                Err(_) => break,
            }
        }
        if let Some(path) = &history {
            let _ = editor.save_history(path);
        }
    });
    runtime.block_on(async {
        while let Some((line, done)) = incoming.recv().await {
            // A failed command is reported and the prompt comes back.
            let flow = shell.run_line(&line).await.unwrap_or(Flow::Continue);
            let _ = done.send(flow);
            if flow == Flow::Quit {
                break;
            }
        }
        shell.close().await;
    });
    // The reader ends after quit or end of input; a panic there has nothing to clean up.
    let _ = reader.join();
    out.flush();
    Ok(())
}
