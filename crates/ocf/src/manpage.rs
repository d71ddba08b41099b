//! The agent's man page (section 7, named `ocf_clever_<agent>` like resource-agents' pages),
//! written from the same declaration as the metadata, so the two can never disagree.

use std::fmt::Write as _;

use crate::declaration::{Agent, Declaration};

/// Escapes text for roff: backslashes, and a leading dot or quote that would read as a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|line| {
            let line = line.trim();
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The man page in roff (`man -l` renders it).
pub fn man_page<A: Agent>(declaration: &Declaration<A>) -> String {
    let name = format!("ocf_clever_{}", declaration.name);
    let mut page = String::new();
    let _ = writeln!(
        page,
        ".TH {} 7 \"\" \"clever-cluster {}\" \"OCF resource agents\"",
        name.to_uppercase(),
        declaration.version
    );
    let _ = writeln!(
        page,
        ".SH NAME\n{} \\- {}",
        roff(&name),
        roff(declaration.shortdesc)
    );
    let _ = writeln!(
        page,
        ".SH SYNOPSIS\n\\fB{}\\fR [{}]",
        roff(declaration.name),
        roff(
            &declaration
                .usage()
                .replace(&format!("usage: {} ", declaration.name), "")
        )
    );
    let _ = writeln!(
        page,
        ".SH DESCRIPTION\n{}",
        roff(declaration.longdesc.trim())
    );
    page.push_str(".SH PARAMETERS\n");
    for spec in declaration.parameters {
        let mut flags = vec![spec.content_type().as_str().to_owned()];
        if spec.required() {
            flags.push("required".to_owned());
        }
        if spec.unique() {
            flags.push("unique".to_owned());
        }
        if let Some(default) = spec.default() {
            flags.push(format!("default \"{default}\""));
        }
        let _ = writeln!(
            page,
            ".TP\n\\fB{}\\fR ({})\n{}",
            roff(spec.name()),
            roff(&flags.join(", ")),
            roff(spec.longdesc().trim())
        );
        if let Some(choices) = spec.choices() {
            let _ = writeln!(page, ".br\nAllowed values: {}.", roff(&choices.join(", ")));
        }
    }
    page.push_str(".SH ACTIONS\n");
    for spec in declaration.actions {
        let mut line = format!("timeout {}s", spec.timeout_secs);
        if let Some(interval) = spec.interval_secs {
            let _ = write!(line, ", interval {interval}s");
        }
        if let Some(depth) = spec.depth {
            let _ = write!(line, ", depth {depth}");
        }
        if let Some(role) = spec.role {
            let _ = write!(line, ", role {}", role.as_str());
        }
        let _ = writeln!(
            page,
            ".TP\n\\fB{}\\fR\n{}",
            roff(spec.action.as_str()),
            roff(&line)
        );
    }
    let _ = writeln!(
        page,
        ".TP\n\\fBmeta\\-data\\fR\nprints the OCF metadata.\n.SH EXIT STATUS\n\
         OCF exit codes; every failure prints one line starting with ocf\\-exit\\-reason: which \
         crm_mon shows.\n.SH SEE ALSO\n\\fBclevervm\\fR(8), \\fBcrm_resource\\fR(8)"
    );
    page
}

#[cfg(test)]
mod tests {
    use super::roff;

    #[test]
    fn roff_escapes_requests_and_backslashes() {
        assert_eq!(roff(".not a request"), "\\&.not a request");
        assert_eq!(roff("a\\b"), "a\\eb");
        assert_eq!(roff("x-y"), "x\\-y");
    }
}
