"""Synthetic test clips with exact ground truth, shipped with privmask like `structlog.testing`.

Real faces and people are pasted onto a textured background at known, moving positions and
every box is kept, so the tests, the benchmark and the demo can judge a redaction exactly.

- `scene`: face specs, background, camera look, `render_scene`/`write_scene`, ground truth.
- `sprites`: the face sprite in assets/ and the person crops taken from the media folder.
- `video`: the `Image` and `Box` types; H.264 clips written from and read back as frames.
- `judge`: `masked_fraction`, `detail_lost` and `is_masked`, judges of masked output.
- `referee`: the detectors run densely on real footage (`Referee`), and its stored boxes
  (`Annotations`), for clips without ground truth.
- `coverage`: `check_coverage`, whether a redaction masked every referee box, as runs.

Everything public is re-exported here: `from privmask.daemon.testing import write_scene`.
"""

from privmask.daemon.testing.coverage import (
    COVERED,
    Coverage,
    FrameBox,
    Judged,
    Run,
    check_coverage,
    covered_fraction,
    group_runs,
    masked_pixels,
    split_by_truth,
)
from privmask.daemon.testing.judge import (
    CHANGE_SIGMA,
    CHANGE_THRESHOLD,
    DETAIL_SCALE,
    detail_lost,
    is_masked,
    masked_fraction,
)
from privmask.daemon.testing.referee import (
    REGENERATE,
    SHARED_CLIPS,
    SPECS,
    Annotations,
    FalsePositive,
    Referee,
    RefereeSpec,
    StaleAnnotations,
    annotate,
    load_annotations,
)
from privmask.daemon.testing.scene import (
    CCTV_CRF,
    CLEAN_CRF,
    DEFAULT_FACES,
    DEFAULT_PILLAR,
    PILLAR_COLOUR,
    FaceSpec,
    Scene,
    Target,
    render_scene,
    write_scene,
)
from privmask.daemon.testing.sprites import (
    ASSETS,
    FACE_BOX_FRACTION,
    FACE_SPRITE_FILE,
    FACE_SPRITE_SHAPE,
    PERSON_FRAMES,
    PERSON_MARGIN,
    PERSON_VIDEO,
    PersonSprite,
    load_face_sprite,
    person_sprites_from_media,
)
from privmask.daemon.testing.video import (
    AUDIO_RATE,
    AUDIO_TONE_HZ,
    Box,
    Image,
    read_frames,
    write_frames,
)

__all__ = [
    # scene
    "CCTV_CRF",
    "CLEAN_CRF",
    "DEFAULT_FACES",
    "DEFAULT_PILLAR",
    "PILLAR_COLOUR",
    "FaceSpec",
    "Scene",
    "Target",
    "render_scene",
    "write_scene",
    # sprites
    "ASSETS",
    "FACE_BOX_FRACTION",
    "FACE_SPRITE_FILE",
    "FACE_SPRITE_SHAPE",
    "PERSON_FRAMES",
    "PERSON_MARGIN",
    "PERSON_VIDEO",
    "PersonSprite",
    "load_face_sprite",
    "person_sprites_from_media",
    # video
    "AUDIO_RATE",
    "AUDIO_TONE_HZ",
    "Box",
    "Image",
    "read_frames",
    "write_frames",
    # judge
    "CHANGE_SIGMA",
    "CHANGE_THRESHOLD",
    "DETAIL_SCALE",
    "detail_lost",
    "is_masked",
    "masked_fraction",
    # coverage
    "COVERED",
    "Coverage",
    "FrameBox",
    "Judged",
    "Run",
    "check_coverage",
    "covered_fraction",
    "group_runs",
    "masked_pixels",
    "split_by_truth",
    # referee
    "REGENERATE",
    "SHARED_CLIPS",
    "SPECS",
    "Annotations",
    "FalsePositive",
    "Referee",
    "RefereeSpec",
    "StaleAnnotations",
    "annotate",
    "load_annotations",
]
