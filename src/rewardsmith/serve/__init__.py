"""The HTTP reward server (FastAPI + uvicorn; `pip install rewardsmith[serve]`).

    from rewardsmith.serve.app import ServeConfig, create_app
    app = create_app(load_reward_model("out/rm"), ServeConfig(api_key="..."))

app.py (endpoints, limits, errors, metrics), batcher.py (dynamic batching on one worker thread),
schemas.py (request/response bodies), openrlhf.py (OpenRLHF's /get_reward query mapping).
"""
