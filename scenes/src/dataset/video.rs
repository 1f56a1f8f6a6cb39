//! Frames of MP4 video features, read through FFmpeg's libraries (libavformat demuxes,
//! libavcodec decodes: dav1d for AV1, FFmpeg's own H.264 and HEVC decoders; libswscale
//! converts to RGB8) by way of the `ffmpeg-next` binding.
//!
//! Frames are chosen as LeRobot chooses them: the decoded frame whose presentation time is
//! nearest the requested timestamp, refused when it is farther than a tolerance (LeRobot's
//! `tolerance_s`, 1e-4 s by default). A [`VideoFile`] keeps its demuxer and decoder between
//! calls: reading forward continues decoding where the last call stopped, reading backward
//! or far ahead seeks to the keyframe at or before the first timestamp.
//!
//! The YUV to RGB conversion is the one torchcodec (LeRobot's decoder) asks libswscale for:
//! the coefficients of the frame's tagged colour space (BT.601 when untagged) at the range of
//! its pixel format, with bilinear chroma as libswscale's unscaled converters do it.

use std::path::{Path, PathBuf};
use std::sync::Once;

use ffmpeg_next as ff;

use crate::Frame;

/// LeRobot's default `tolerance_s`: a decoded frame farther than this from the requested
/// timestamp is not the frame asked for.
pub const TOLERANCE_S: f64 = 1e-4;

/// Reading forward by at most this much decodes on; farther ahead, seeking to a keyframe is
/// cheaper.
const SEEK_AHEAD_S: f64 = 2.0;

/// What went wrong reading a video file, and at which requested timestamp (seconds in the
/// file) if at one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VideoError {
    pub message: String,
    pub timestamp: Option<f64>,
}

impl VideoError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            timestamp: None,
        }
    }

    fn at(message: impl Into<String>, timestamp: f64) -> Self {
        Self {
            message: message.into(),
            timestamp: Some(timestamp),
        }
    }
}

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Errors reach the caller as values naming the file; FFmpeg's own log would repeat
        // them on stderr.
        ff::util::log::set_level(ff::util::log::Level::Quiet);
        let _ = ff::init();
    });
}

/// An open MP4 file's video stream: demuxer, decoder, and where decoding stands.
pub(crate) struct VideoFile {
    path: PathBuf,
    input: ff::format::context::Input,
    stream: usize,
    /// Seconds per tick of the stream's time base.
    time_base: f64,
    decoder: ff::decoder::Video,
    codec: String,
    /// Presentation time of the last frame decoded and passed over or handed out.
    position: Option<f64>,
    /// A decoded frame not handed out yet (decoded past a requested timestamp).
    pending: Option<(f64, ff::frame::Video)>,
    /// The demuxer reached the end and the decoder was told so.
    drained: bool,
}

impl std::fmt::Debug for VideoFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VideoFile({}, {})", self.path.display(), self.codec)
    }
}

impl VideoFile {
    pub fn open(path: &Path) -> Result<Self, VideoError> {
        init();
        if !path.is_file() {
            return Err(VideoError::new("no such video file"));
        }
        let input = ff::format::input(&path)
            .map_err(|e| VideoError::new(format!("cannot open as a video container: {e}")))?;
        let stream = input
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| VideoError::new("the file has no video stream"))?;
        let index = stream.index();
        let tb = stream.time_base();
        if tb.numerator() <= 0 || tb.denominator() <= 0 {
            return Err(VideoError::new(format!(
                "the video stream's time base is {}/{}",
                tb.numerator(),
                tb.denominator()
            )));
        }
        let time_base = f64::from(tb.numerator()) / f64::from(tb.denominator());
        let params = stream.parameters();
        let id = params.id();
        let codec = id.name().to_owned();
        let decoder = ff::codec::context::Context::from_parameters(params)
            .and_then(|mut c| {
                // One thread: a decoder's thread pool costs more to start than the small
                // frames of robot datasets take to decode, and frame threading delays every
                // frame by the number of threads (each random access pays for it).
                c.set_threading(ff::codec::threading::Config::count(1));
                c.decoder().video()
            })
            .map_err(|e| {
                VideoError::new(format!(
                    "no decoder for codec `{codec}` in this FFmpeg build ({e}); \
                     AV1, H.264 and HEVC are supported"
                ))
            })?;
        Ok(Self {
            path: path.to_owned(),
            input,
            stream: index,
            time_base,
            decoder,
            codec,
            position: None,
            pending: None,
            drained: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The codec's FFmpeg name (`av1`, `h264`, `hevc`, ...).
    pub fn codec(&self) -> &str {
        &self.codec
    }

    /// Bytes of one decoded frame (YUV 4:2:0 at the stream's size).
    pub fn frame_bytes(&self) -> usize {
        let (w, h) = (
            self.decoder.width() as usize,
            self.decoder.height() as usize,
        );
        w * h * 3 / 2
    }

    /// Where the container says the video stream ends (seconds in the file: its start time
    /// plus its duration, which in an MP4 is the edit list's), if it says.
    pub fn declared_end(&self) -> Option<f64> {
        let stream = self.input.stream(self.stream)?;
        let duration = stream.duration();
        if duration <= 0 {
            return None;
        }
        let start = stream.start_time();
        let start = if start == ff::ffi::AV_NOPTS_VALUE {
            0
        } else {
            start
        };
        Some((start + duration) as f64 * self.time_base)
    }

    /// The frames nearest to each of `timestamps` (seconds in the file, ascending), each
    /// within `tolerance`, as RGB8.
    pub fn frames_at(
        &mut self,
        timestamps: &[f64],
        tolerance: f64,
    ) -> Result<Vec<Frame>, VideoError> {
        let Some(&first) = timestamps.first() else {
            return Ok(Vec::new());
        };
        if timestamps.windows(2).any(|w| w[1] < w[0]) {
            return Err(VideoError::new("timestamps requested out of order"));
        }
        // Decoding on can hand out frames after the last one passed over (or from the
        // pending one on); anything earlier, or far ahead, needs a seek.
        let seek = match (&self.pending, self.position) {
            (Some((t, _)), _) => first < t - tolerance || first > t + SEEK_AHEAD_S,
            (None, Some(p)) => first <= p + tolerance || first > p + SEEK_AHEAD_S,
            (None, None) => first > SEEK_AHEAD_S,
        };
        if seek {
            self.seek(first - tolerance)?;
        }
        let mut converter = Converter::default();
        let mut out = Vec::with_capacity(timestamps.len());
        for &t in timestamps {
            loop {
                let (pts, frame) = match self.pending.take() {
                    Some(f) => f,
                    None => match self.next_frame().map_err(|e| VideoError {
                        timestamp: e.timestamp.or(Some(t)),
                        ..e
                    })? {
                        Some(f) => f,
                        None => {
                            let last = self.position.map_or("it holds no frame".to_owned(), |p| {
                                format!("its last frame is at {p:.4} s")
                            });
                            return Err(VideoError::at(
                                format!("no frame at {t:.4} s: the video ends before it ({last})"),
                                t,
                            ));
                        }
                    },
                };
                if (pts - t).abs() <= tolerance {
                    out.push(converter.rgb(&frame).map_err(|m| VideoError::at(m, t))?);
                    self.position = Some(pts);
                    break;
                }
                if pts > t {
                    let before = self
                        .position
                        .map_or(String::new(), |p| format!("{p:.4} s and "));
                    self.pending = Some((pts, frame));
                    return Err(VideoError::at(
                        format!(
                            "no frame within {tolerance} s of {t:.4} s (the nearest decoded \
                             frames are at {before}{pts:.4} s)"
                        ),
                        t,
                    ));
                }
                self.position = Some(pts);
            }
        }
        Ok(out)
    }

    fn seek(&mut self, seconds: f64) -> Result<(), VideoError> {
        let target = if seconds.is_finite() {
            (seconds.max(0.0) * f64::from(ff::ffi::AV_TIME_BASE)).floor() as i64
        } else {
            0
        };
        // The keyframe at or before `target`.
        self.input
            .seek(target, i64::MIN..target)
            .or_else(|_| self.input.seek(0, i64::MIN..i64::MAX))
            .map_err(|e| VideoError::at(format!("cannot seek: {e}"), seconds))?;
        self.decoder.flush();
        self.position = None;
        self.pending = None;
        self.drained = false;
        Ok(())
    }

    /// The next decoded frame and its presentation time, or `None` at the end.
    fn next_frame(&mut self) -> Result<Option<(f64, ff::frame::Video)>, VideoError> {
        let mut frame = ff::frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    let pts = frame.timestamp().or(frame.pts()).ok_or_else(|| {
                        VideoError::new("a decoded frame has no presentation time")
                    })?;
                    return Ok(Some((pts as f64 * self.time_base, frame)));
                }
                Err(ff::Error::Eof) => return Ok(None),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(e) => return Err(VideoError::new(format!("cannot decode a frame: {e}"))),
            }
            if self.drained {
                return Ok(None);
            }
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() == self.stream {
                        self.decoder.send_packet(&packet).map_err(|e| {
                            VideoError::new(format!(
                                "cannot decode the packet at {}: {e}",
                                packet
                                    .pts()
                                    .map_or("an unknown time".to_owned(), |p| format!(
                                        "{:.4} s",
                                        p as f64 * self.time_base
                                    ))
                            ))
                        })?;
                    }
                }
                Err(ff::Error::Eof) => {
                    self.drained = true;
                    // Ignoring a refusal here is right: the decoder was already drained.
                    let _ = self.decoder.send_eof();
                }
                Err(e) => return Err(VideoError::new(format!("cannot read a packet: {e}"))),
            }
        }
    }
}

/// YUV (or any decoded format) to RGB8, through a libswscale context made for the frames'
/// format, size and colour space and kept while they stay the same.
#[derive(Default)]
struct Converter {
    context: Option<(Key, ff::software::scaling::Context)>,
    rgb: Option<ff::frame::Video>,
}

type Key = (ff::format::Pixel, u32, u32, ff::color::Space);

impl Converter {
    fn rgb(&mut self, frame: &ff::frame::Video) -> Result<Frame, String> {
        let (w, h) = (frame.width(), frame.height());
        if w == 0 || h == 0 {
            return Err(format!("a decoded frame is {w}x{h}"));
        }
        let key = (frame.format(), w, h, frame.color_space());
        if self.context.as_ref().is_none_or(|(k, _)| *k != key) {
            let mut ctx = ff::software::scaling::Context::get(
                key.0,
                w,
                h,
                ff::format::Pixel::RGB24,
                w,
                h,
                ff::software::scaling::Flags::BILINEAR,
            )
            .map_err(|e| format!("cannot convert {:?} frames to RGB: {e}", key.0))?;
            set_colorspace(&mut ctx, key.3);
            self.context = Some((key, ctx));
            self.rgb = None;
        }
        let Some((_, ctx)) = self.context.as_mut() else {
            return Err("no converter".into());
        };
        let out = self.rgb.get_or_insert_with(ff::frame::Video::empty);
        ctx.run(frame, out)
            .map_err(|e| format!("cannot convert a frame to RGB: {e}"))?;
        let stride = out.stride(0);
        let row = w as usize * 3;
        let plane = out.data(0);
        let mut data = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            data.extend_from_slice(&plane[y * stride..y * stride + row]);
        }
        Ok(Frame {
            width: w,
            height: h,
            data,
        })
    }
}

/// The coefficients of the frame's colour space, at the ranges libswscale chose from the
/// pixel formats (as torchcodec does).
fn set_colorspace(ctx: &mut ff::software::scaling::Context, space: ff::color::Space) {
    let space: ff::ffi::AVColorSpace = space.into();
    // SAFETY: `ctx` owns a valid SwsContext; the pointers passed out are to locals that
    // outlive the calls, and `sws_getCoefficients` returns a pointer to a static table
    // (the default one for values it does not know).
    unsafe {
        let ptr = ctx.as_mut_ptr();
        let mut inv_table: *mut i32 = std::ptr::null_mut();
        let mut table: *mut i32 = std::ptr::null_mut();
        let (mut src_range, mut dst_range, mut brightness, mut contrast, mut saturation) =
            (0, 0, 0, 0, 0);
        if ff::ffi::sws_getColorspaceDetails(
            ptr,
            &mut inv_table,
            &mut src_range,
            &mut table,
            &mut dst_range,
            &mut brightness,
            &mut contrast,
            &mut saturation,
        ) < 0
        {
            return;
        }
        let coefficients = ff::ffi::sws_getCoefficients(space as i32);
        ff::ffi::sws_setColorspaceDetails(
            ptr,
            coefficients,
            src_range,
            coefficients,
            dst_range,
            brightness,
            contrast,
            saturation,
        );
    }
}

/// How Dreamyard encodes video: LeRobot's defaults (`libsvtav1`, `yuv420p`, GOP 2, CRF 30,
/// preset 12), so its files are what LeRobot's own recorder writes.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoEncoding {
    /// FFmpeg's encoder name.
    pub encoder: &'static str,
    /// The codec LeRobot's `info.json` names (`video.codec`).
    pub codec: &'static str,
    pub pix_fmt: &'static str,
    pub gop: u32,
    pub crf: u32,
    pub preset: u32,
}

impl Default for VideoEncoding {
    fn default() -> Self {
        Self {
            encoder: "libsvtav1",
            codec: "av1",
            pix_fmt: "yuv420p",
            gop: 2,
            crf: 30,
            preset: 12,
        }
    }
}

impl VideoEncoding {
    /// The smallest frame side SVT-AV1 encodes.
    pub const MIN_SIDE: u32 = 64;

    /// Whether frames of `width` x `height` can be encoded: `yuv420p` needs even sides, and
    /// SVT-AV1 at least [`Self::MIN_SIDE`] pixels on each.
    pub fn check_size(&self, width: u32, height: u32) -> Result<(), String> {
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(format!(
                "{width}x{height}: {} needs an even width and height",
                self.pix_fmt
            ));
        }
        if self.encoder == "libsvtav1" && (width < Self::MIN_SIDE || height < Self::MIN_SIDE) {
            return Err(format!(
                "{width}x{height}: SVT-AV1 encodes frames of at least {m}x{m}",
                m = Self::MIN_SIDE
            ));
        }
        Ok(())
    }

    /// The feature's `info` entry of `info.json`, as LeRobot writes it.
    pub fn info_json(&self, width: u32, height: u32, fps: f64) -> serde_json::Value {
        serde_json::json!({
            "video.height": height,
            "video.width": width,
            "video.codec": self.codec,
            "video.pix_fmt": self.pix_fmt,
            "video.fps": fps,
            "video.channels": 3,
            "has_audio": false,
            "video.g": self.gop,
            "video.crf": self.crf,
            "video.preset": self.preset,
            "video.fast_decode": 0,
            "is_depth_map": false,
        })
    }

    /// Encodes `frames` (RGB8, all one size) at `fps` into an MP4 file at `path` (written in
    /// place: the caller writes to a temporary name and renames it).
    pub(crate) fn encode(&self, frames: &[Frame], fps: f64, path: &Path) -> Result<(), String> {
        init();
        let Some(first) = frames.first() else {
            return Err("no frames to encode".into());
        };
        let (w, h) = (first.width, first.height);
        self.check_size(w, h)?;
        let codec = ff::encoder::find_by_name(self.encoder).ok_or_else(|| {
            format!(
                "this FFmpeg build has no `{}` encoder (Debian: libavcodec59 with SVT-AV1)",
                self.encoder
            )
        })?;
        let mut octx = ff::format::output_as(&path, "mp4")
            .map_err(|e| format!("cannot create an MP4 file: {e}"))?;
        let global_header = octx
            .format()
            .flags()
            .contains(ff::format::flag::Flags::GLOBAL_HEADER);
        let rate = ff::Rational::from(fps);
        let time_base = rate.invert();
        let mut enc = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| format!("cannot set up the {} encoder: {e}", self.encoder))?;
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(ff::format::Pixel::YUV420P);
        enc.set_time_base(time_base);
        enc.set_frame_rate(Some(rate));
        enc.set_gop(self.gop);
        if global_header {
            enc.set_flags(ff::codec::flag::Flags::GLOBAL_HEADER);
        }
        let mut options = ff::Dictionary::new();
        options.set("crf", &self.crf.to_string());
        options.set("preset", &self.preset.to_string());
        if self.encoder == "libsvtav1" {
            // Closed GOPs: every `gop`-th frame a key frame the MP4 marks as a sync sample, as
            // LeRobot's files have. SVT-AV1 1.4 (Debian 12) defaults to forward key frames,
            // which are not: a reader then decodes from the file's first frame on every seek.
            options.set("svtav1-params", "irefresh-type=2");
        }
        let mut enc = enc.open_with(options).map_err(|e| {
            format!(
                "the {} encoder refuses {w}x{h} frames at {fps} fps: {e}",
                self.encoder
            )
        })?;
        let mut stream = octx
            .add_stream(codec)
            .map_err(|e| format!("cannot add a video stream: {e}"))?;
        stream.set_parameters(&enc);
        stream.set_time_base(time_base);
        let mut muxer_options = ff::Dictionary::new();
        muxer_options.set("movflags", "+faststart");
        octx.write_header_with(muxer_options)
            .map_err(|e| format!("cannot write the MP4 header: {e}"))?;
        let stream_tb = octx
            .stream(0)
            .map(|s| s.time_base())
            .ok_or("the MP4 has no stream")?;

        let mut scaler = ff::software::scaling::Context::get(
            ff::format::Pixel::RGB24,
            w,
            h,
            ff::format::Pixel::YUV420P,
            w,
            h,
            ff::software::scaling::Flags::BILINEAR,
        )
        .map_err(|e| format!("cannot convert RGB to {}: {e}", self.pix_fmt))?;
        let mut rgb = ff::frame::Video::new(ff::format::Pixel::RGB24, w, h);
        let write_packets = |enc: &mut ff::encoder::Video,
                             octx: &mut ff::format::context::Output|
         -> Result<(), String> {
            let mut packet = ff::Packet::empty();
            while enc.receive_packet(&mut packet).is_ok() {
                packet.set_stream(0);
                // Every frame lasts one frame period. Without it the muxer gives the last
                // packet no duration, and the MP4's edit list then ends a frame early:
                // decoders that honour it (PyAV's, so LeRobot's) never return the last frame.
                packet.set_duration(1);
                packet.rescale_ts(time_base, stream_tb);
                packet
                    .write_interleaved(octx)
                    .map_err(|e| format!("cannot write a packet: {e}"))?;
            }
            Ok(())
        };
        for (i, f) in frames.iter().enumerate() {
            if (f.width, f.height) != (w, h) || f.data.len() != (w * h * 3) as usize {
                return Err(format!(
                    "frame {i} is {}x{} ({} bytes); the first is {w}x{h} RGB8",
                    f.width,
                    f.height,
                    f.data.len()
                ));
            }
            let stride = rgb.stride(0);
            let row = w as usize * 3;
            let plane = rgb.data_mut(0);
            for y in 0..h as usize {
                plane[y * stride..y * stride + row]
                    .copy_from_slice(&f.data[y * row..(y + 1) * row]);
            }
            // A new frame each time: the encoder may still hold a reference to the last one.
            let mut yuv = ff::frame::Video::empty();
            scaler
                .run(&rgb, &mut yuv)
                .map_err(|e| format!("cannot convert frame {i} to {}: {e}", self.pix_fmt))?;
            yuv.set_pts(Some(i as i64));
            enc.send_frame(&yuv)
                .map_err(|e| format!("cannot encode frame {i}: {e}"))?;
            write_packets(&mut enc, &mut octx)?;
        }
        enc.send_eof()
            .map_err(|e| format!("cannot finish encoding: {e}"))?;
        write_packets(&mut enc, &mut octx)?;
        octx.write_trailer()
            .map_err(|e| format!("cannot finish the MP4 file: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets the MP4 marks as key frames (sync samples), and all packets.
    fn key_packets(path: &Path) -> (usize, usize) {
        let mut input = ff::format::input(&path).unwrap();
        let (mut keys, mut all) = (0, 0);
        for (_, packet) in input.packets() {
            all += 1;
            keys += usize::from(packet.is_key());
        }
        (keys, all)
    }

    #[test]
    fn every_gop_starts_with_a_key_frame_a_seek_can_land_on() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("v.mp4");
        let frames: Vec<Frame> = (0..10u8)
            .map(|i| Frame {
                width: 64,
                height: 64,
                data: (0..64 * 64 * 3)
                    .map(|p| (p as u8).wrapping_mul(i))
                    .collect(),
            })
            .collect();
        VideoEncoding::default()
            .encode(&frames, 10.0, &path)
            .unwrap();
        assert_eq!(key_packets(&path), (5, 10), "GOP 2: frames 0, 2, 4, 6, 8");

        let mut file = VideoFile::open(&path).unwrap();
        assert_eq!(file.declared_end(), Some(1.0), "the last frame lasts 0.1 s");
        let got = file.frames_at(&[0.7, 0.9], TOLERANCE_S).unwrap();
        assert_eq!(got.len(), 2);
        assert!(file.frames_at(&[1.0], TOLERANCE_S).is_err());
    }

    #[test]
    fn frames_svt_av1_cannot_take_are_refused_before_encoding() {
        let e = VideoEncoding::default();
        assert!(e.check_size(64, 64).is_ok());
        assert!(e.check_size(32, 64).unwrap_err().contains("at least 64x64"));
        assert!(e.check_size(65, 64).unwrap_err().contains("even"));
    }
}
