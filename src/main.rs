fn main() {
    std::process::exit(hmreg::cli::main());
}
