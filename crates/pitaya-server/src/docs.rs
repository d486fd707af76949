//! The documentation component that [`Builder::docs`](crate::Builder::docs) adds: the
//! server's self-description (routes, types, protobuf descriptors) for tools such as
//! `pitaya-cli --docs`, as Go apps do with `pitaya.Documentation` and `pitaya.Descriptor`.

use pitaya_handler::{Component, Docs, RemoteComponent};

/// Adds the documentation component to `components`, its document covering all of them
/// (itself included) and `remotes`.
pub(crate) fn attach(
    components: &mut Vec<Component>,
    remotes: &[RemoteComponent],
    server_type: &str,
    protobuf: bool,
    (name, docs): (String, Docs),
) {
    let signatures = |name: &str, sigs: Vec<(String, pitaya_handler::Signature)>| {
        sigs.into_iter().map(move |(m, s)| (format!("{name}.{m}"), s)).collect::<Vec<_>>()
    };
    let (component, cell) = docs.clone().component(&name);
    components.push(component);
    let handlers: Vec<_> =
        components.iter().flat_map(|c| signatures(c.name(), c.signatures())).collect();
    let remotes: Vec<_> =
        remotes.iter().flat_map(|r| signatures(r.name(), r.signatures())).collect();
    let doc = docs.document(server_type, protobuf, &handlers, &remotes);
    // The cell was created just above and is set only here.
    let _ = cell.set(doc.to_string());
}
