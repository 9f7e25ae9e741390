"""A web page over geo-r: ask a model where a photo was taken (`ask`), browse a finished evaluation's errors on
a map (`runs`), both drawn on an offline SVG world map (`map`) and laid out in `page`.

    python -m open_r1.app --model_name_or_path output/run1 [--tools zoom lookup] [--run output/eval/run1]
"""
