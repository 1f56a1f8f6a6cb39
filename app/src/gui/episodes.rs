//! The episodes of the dataset a replay comes from: the list the Episode section and the
//! episode picker show (read from the dataset's metadata when the dataset changes, never per
//! frame), and the picker File > Open dataset opens for a dataset of several episodes.

use std::path::PathBuf;

use bevy::prelude::*;

use super::AppSet;
use super::driver::SessionRes;
use crate::commands::Command;
use crate::launch::{EpisodeSummary, list_episodes};
use crate::session::truth::TruthSource;

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Episodes>()
        .add_systems(Update, follow_dataset.in_set(AppSet::Input));
}

/// A dataset's episodes, or why they could not be listed.
pub(super) type Listing = (PathBuf, Result<Vec<EpisodeSummary>, String>);

#[derive(Resource, Debug, Default)]
pub(super) struct Episodes {
    /// The episodes of the dataset the shown replay came from.
    pub current: Option<Listing>,
    /// A dataset whose episode the user is asked to choose (File > Open dataset).
    pub picker: Option<Listing>,
}

impl Episodes {
    /// Asks which episode of the dataset in `dir` to open (the picker window); a dataset of
    /// one episode, or one whose episodes cannot be listed, opens at once (its errors become
    /// the opening's notice): the command to run then.
    pub fn ask_or_open(&mut self, dir: PathBuf) -> Option<Command> {
        match list_episodes(&dir) {
            Ok(list) if list.len() > 1 => {
                self.picker = Some((dir, Ok(list)));
                None
            }
            _ => Some(Command::OpenDataset { dir, episode: 0 }),
        }
    }
}

fn follow_dataset(session: Option<Res<SessionRes>>, mut episodes: ResMut<Episodes>) {
    let Some(session) = session else {
        return;
    };
    let dir = match session.origin() {
        Some(TruthSource::Dataset { dir, .. }) => Some(dir),
        _ => None,
    };
    if episodes.current.as_ref().map(|(d, _)| d) == dir {
        return;
    }
    episodes.current = dir.map(|d| {
        let list = list_episodes(d).map_err(|e| crate::error_chain(e.as_ref()));
        (d.clone(), list)
    });
}
