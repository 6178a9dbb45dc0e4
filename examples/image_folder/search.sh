#!/bin/sh
# A custom space (space.py: a small MobileNet-style family) searched on an image folder.
#
#   sh examples/image_folder/search.sh [IMAGE_FOLDER] [BUDGET]     # from the repository root
#
# IMAGE_FOLDER: one subfolder of images per class (default: a demo folder written to /tmp/gradnas_shapes by
# make_images.py); BUDGET: the search's wall-clock budget (default 5m: about 5 minutes on a 2-core CPU).
# Ends with the trained best model in runs/<study>/best_model.pt and the next commands to run.
set -e
DATA=${1:-/tmp/gradnas_shapes}
BUDGET=${2:-5m}
HERE=$(dirname "$0")
[ -d "$DATA" ] || python "$HERE/make_images.py" "$DATA"
python -m nas search --space "$HERE/space.py:space" --dataset "folder:$DATA" --budget "$BUDGET"
