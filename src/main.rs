fn main() {
    // Before any large allocation: keep activation buffers in the heap between steps.
    hmreg::ops::alloc::tune_allocator();
    hmreg::ops::threads::limit_candle_spinning();
    std::process::exit(hmreg::cli::main());
}
