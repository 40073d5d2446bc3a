use candle_core::{Device, Tensor, Var};
use std::time::Instant;
fn main() {
    let dev = Device::Cpu;
    let shapes = [
        (8, 3, 256, 64, 7, 2, 3),
        (8, 64, 64, 64, 3, 1, 1),
        (8, 64, 64, 128, 3, 2, 1),
        (8, 128, 32, 128, 3, 1, 1),
        (8, 256, 16, 256, 3, 1, 1),
        (8, 512, 8, 512, 3, 1, 1),
        (8, 96, 256, 96, 3, 1, 1),
    ];
    for (n, c, h, co, k, s, p) in shapes {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (n, c, h, h), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (co, c, k, k), &dev).unwrap()).unwrap();
        let oh = (h + 2 * p - k) / s + 1;
        let flops = 2.0 * (n * co * oh * oh * c * k * k) as f64;
        for which in ["ours", "candle"] {
            let run = |bwd: bool| {
                let y = if which == "ours" {
                    hmreg::ops::conv2d(x.as_tensor(), w.as_tensor(), None, s, p, 1).unwrap()
                } else {
                    x.as_tensor().conv2d(w.as_tensor(), p, s, 1, 1).unwrap()
                };
                if bwd {
                    let _ = y.sum_all().unwrap().backward().unwrap();
                }
            };
            run(true);
            let t = Instant::now();
            run(false);
            let f = t.elapsed().as_secs_f64();
            let t = Instant::now();
            run(true);
            let fb = t.elapsed().as_secs_f64();
            println!(
                "{which:6} n{n} c{c} {h} -> {co} k{k} s{s}: fwd {:7.1} ms ({:5.0} GF/s)  fwd+bwd {:7.1} ms ({:5.0} GF/s)",
                f * 1e3, flops / f / 1e9, fb * 1e3, 3.0 * flops / fb / 1e9
            );
            if h >= 256 && c >= 96 {
                break;
            }
        }
    }
}
