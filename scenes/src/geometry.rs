//! Small 2-D geometry helpers: poses, polygon areas and intersections (through parry, the
//! geometry library under rapier).

use rapier2d::parry::transformation::convex_polygons_intersection_points;
use rapier2d::prelude::Vector;

/// A planar pose: position and angle (radians, counter-clockwise in maths convention, which is
/// clockwise on screen because y points down).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pose2 {
    pub x: f64,
    pub y: f64,
    pub angle: f64,
}

impl Pose2 {
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        let (s, c) = self.angle.sin_cos();
        [self.x + c * p[0] - s * p[1], self.y + s * p[0] + c * p[1]]
    }

    pub fn apply_all(&self, points: &[[f64; 2]]) -> Vec<[f64; 2]> {
        points.iter().map(|&p| self.apply(p)).collect()
    }
}

/// Shoelace area of a simple polygon (absolute value).
pub(crate) fn polygon_area(points: &[[f64; 2]]) -> f64 {
    let n = points.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    twice.abs() / 2.0
}

/// Area of the intersection of two convex polygons given counter-clockwise (in their own
/// coordinates; orientation is normalised here).
pub(crate) fn convex_intersection_area(a: &[[f64; 2]], b: &[[f64; 2]]) -> f64 {
    let to_ccw = |poly: &[[f64; 2]]| -> Vec<Vector> {
        let mut v: Vec<Vector> = poly
            .iter()
            .map(|p| Vector::new(p[0] as f32, p[1] as f32))
            .collect();
        let signed: f32 = (0..v.len())
            .map(|i| {
                let (p, q) = (v[i], v[(i + 1) % v.len()]);
                p.x * q.y - q.x * p.y
            })
            .sum();
        if signed < 0.0 {
            v.reverse();
        }
        v
    };
    let mut out = Vec::new();
    convex_polygons_intersection_points(&to_ccw(a), &to_ccw(b), &mut out);
    let points: Vec<[f64; 2]> = out.iter().map(|p| [p.x as f64, p.y as f64]).collect();
    if points.len() < 3 {
        0.0
    } else {
        polygon_area(&points)
    }
}

/// Wraps an angle into `[0, 2π)`.
pub(crate) fn wrap_two_pi(angle: f64) -> f64 {
    angle.rem_euclid(std::f64::consts::TAU)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersection_of_overlapping_squares() {
        let a = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]];
        let b = [[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]];
        assert!((convex_intersection_area(&a, &b) - 1.0).abs() < 1e-5);
        // Clockwise input gives the same area.
        let mut cw = b;
        cw.reverse();
        assert!((convex_intersection_area(&a, &cw) - 1.0).abs() < 1e-5);
        let far = [[10.0, 10.0], [11.0, 10.0], [11.0, 11.0], [10.0, 11.0]];
        assert_eq!(convex_intersection_area(&a, &far), 0.0);
    }

    #[test]
    fn pose_rotates_counter_clockwise() {
        let p = Pose2 {
            x: 1.0,
            y: 2.0,
            angle: std::f64::consts::FRAC_PI_2,
        };
        let q = p.apply([1.0, 0.0]);
        assert!((q[0] - 1.0).abs() < 1e-12 && (q[1] - 3.0).abs() < 1e-12);
    }
}
