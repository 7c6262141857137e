//! The README's walkthroughs, run as a new user would paste them: every fenced `sh` block, in
//! order, in one shell (variables carry over from block to block), against a platform this
//! test starts. Any failing command fails the test, and so does any HTTP error answer: `curl`
//! runs with `--fail-with-body`.
//!
//! Skipped: the block holding the two commands (`./dev up`, `./dev test`): this test is part
//! of the second and plays the first itself. The addresses the README uses (api on
//! 127.0.0.1:8080, simulator on 127.0.0.1:8090) are replaced by this platform's.

use std::process::Command;

use wharf_tests::platform::Platform;

/// The fenced `sh` blocks of `markdown`, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") || l.starts_with("```bash") => {
                current = Some(String::new())
            }
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_shell_block_works_when_pasted_whole() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let blocks = shell_blocks(&readme);
    let runnable: Vec<&String> = blocks
        .iter()
        .filter(|b| !b.contains("./dev up") && !b.contains("./dev test"))
        .collect();
    assert!(
        runnable.len() >= 2,
        "expected the curl walkthroughs, found {} blocks",
        runnable.len()
    );
    let p = Platform::start().await;
    let api = p.app.base_url.trim_start_matches("http://").to_string();
    let sim = p.sim.base_url().trim_start_matches("http://").to_string();
    let mut script = String::from(
        "set -euo pipefail\ncurl() { command curl --fail-with-body --max-time 20 \"$@\"; }\n",
    );
    for block in runnable {
        script.push_str(
            &block
                .replace("127.0.0.1:8080", &api)
                .replace("127.0.0.1:8090", &sim),
        );
        script.push('\n');
    }
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "a README block failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    // The reply is in the conversation the walkthrough found.
    assert!(
        stdout.contains("On its way!"),
        "the reply is not in the conversation's messages:\n{stdout}"
    );
    assert!(stdout.contains("conversation: "), "{stdout}");
}
