"""The Binder image's Jupyter config: the agent runs the small embedded model.

binder/postBuild installs this file as ``<environment>/etc/jupyter/jupyter_server_config.py``, where the
Jupyter server reads it, and so do the agent's magics, kernel and CLI. The model's thread count follows the
pod's CPU quota by itself (mybinder.org: 1 CPU, however many cores the machine shows), and llama.cpp's prompt
cache takes an eighth of the pod's memory limit (2 GB: 238 MiB).
"""

c = get_config()  # noqa: F821  (the config loader provides get_config)

# mybinder.org gives a user 2 GB of RAM: Qwen2.5-Coder-0.5B needs about 0.8 GB, the default 1.5B about 2 GB.
c.JupyterAgent.local_model = "qwen2.5-coder-0.5b"
