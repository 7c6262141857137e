fn main() {
    eprintln!("scheduler: not built yet");
    std::process::exit(2);
}
