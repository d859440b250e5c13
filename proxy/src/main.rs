fn main() {
    println!("gatehouse {}", env!("CARGO_PKG_VERSION"));
}
