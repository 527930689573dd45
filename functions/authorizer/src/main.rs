//! The authorizer Lambda function: not implemented yet.

fn main() {
    eprintln!("tollgate authorizer: not implemented yet");
    std::process::exit(1);
}
