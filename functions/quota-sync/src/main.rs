//! The quota-sync Lambda function: not implemented yet.

fn main() {
    eprintln!("tollgate quota-sync: not implemented yet");
    std::process::exit(1);
}
