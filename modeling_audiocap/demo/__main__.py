"""`python -m modeling_audiocap.demo --model_dir ... --caption_model_dir ... --data_dir ...` (`make demo`)."""

from . import main

main()
