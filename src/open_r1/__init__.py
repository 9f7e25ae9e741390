"""geo-r: teach vision-language models to geolocate photos with reinforcement learning."""
