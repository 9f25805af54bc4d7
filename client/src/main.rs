//! `pacs-client`: placeholder entry point until the facility client lands.

fn main() {
    eprintln!("pacs-client: the facility client is not built yet; see README.md");
    std::process::exit(64);
}
