//! The ingest Lambda function: not implemented yet.

fn main() {
    eprintln!("tollgate ingest: not implemented yet");
    std::process::exit(1);
}
