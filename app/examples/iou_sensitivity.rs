//! How far the T block may be off before its mask IoU falls: renders push-t states, moves the
//! block by a known shift or turn, and prints the mean block IoU between the two frames (the
//! same palette and tolerance as `dreamyard eval`). It turns an IoU figure into a pose error.
//!
//! ```sh
//! cargo run --release --no-default-features -p dreamyard --example iou_sensitivity -- [frame size] [states]
//! ```

use anyhow::Context as _;
use dreamyard::metrics::{DEFAULT_TOLERANCE, Palette, mask_iou};
use dreamyard_scenes::{SceneSource, load_scene};
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let size: u32 = args
        .next()
        .map_or(Ok(64), |s| s.parse())
        .context("frame size")?;
    let states: u64 = args
        .next()
        .map_or(Ok(200), |s| s.parse())
        .context("states")?;
    let mut scene = load_scene(&SceneSource::parse("push-t"), Some((size, size)))?;
    let palette = Palette::from_spec(scene.spec(), DEFAULT_TOLERANCE);
    let block = palette
        .names
        .iter()
        .position(|n| n == "block")
        .context("push-t has no object named block")?;
    // Scene units (the world is 512 wide) per frame pixel.
    let unit = 512.0 / f64::from(size);
    let shifts_px = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0];
    let turns_deg = [1.0, 2.0, 3.0, 5.0, 10.0];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut shift_iou = vec![0.0; shifts_px.len()];
    let mut turn_iou = vec![0.0; turns_deg.len()];
    for seed in 0..states {
        let s = scene.reset(seed).state;
        let (bx, by, angle) = (s[2], s[3], s[4]);
        // The agent in the corner furthest from the block, so it neither touches nor hides it.
        let corners = [[60.0, 60.0], [452.0, 60.0], [60.0, 452.0], [452.0, 452.0]];
        let [ax, ay] = corners
            .into_iter()
            .max_by(|p, q| {
                let d = |c: &[f64; 2]| (c[0] - bx).powi(2) + (c[1] - by).powi(2);
                d(p).total_cmp(&d(q))
            })
            .unwrap_or(corners[0]);
        let mut render = |x: f64, y: f64, a: f64| -> anyhow::Result<Vec<u8>> {
            Ok(scene.reset_to(&[ax, ay, x, y, a])?.frame.data)
        };
        let base = render(bx, by, angle)?;
        let iou = |other: &[u8]| mask_iou(&base, other, &palette)[block].1.unwrap_or(0.0);
        for (k, &px) in shifts_px.iter().enumerate() {
            let dir = rng.random_range(0.0..std::f64::consts::TAU);
            let d = px * unit;
            shift_iou[k] += iou(&render(bx + d * dir.cos(), by + d * dir.sin(), angle)?);
        }
        for (k, &deg) in turns_deg.iter().enumerate() {
            let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            turn_iou[k] += iou(&render(bx, by, angle + sign * f64::to_radians(deg))?);
        }
    }
    let n = states as f64;
    println!("push-t at {size}x{size}, {states} seeded start states, block mask IoU after:");
    println!("| shift (frame px) | shift (scene units) | mean IoU |");
    println!("| --- | --- | --- |");
    for (px, sum) in shifts_px.iter().zip(&shift_iou) {
        println!("| {px} | {:.1} | {:.3} |", px * unit, sum / n);
    }
    println!("| turn (degrees) | mean IoU |");
    println!("| --- | --- |");
    for (deg, sum) in turns_deg.iter().zip(&turn_iou) {
        println!("| {deg} | {:.3} |", sum / n);
    }
    Ok(())
}
