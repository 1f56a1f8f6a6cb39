# Writes tests/fixtures/gym-pusht-keypoints.json (see tests/fixtures/README.md).
# Reference keypoints from gym-pusht 0.1.8 (pymunk 6.11.1): obs_type environment_state_agent_pos.
import json, numpy as np, gymnasium as gym, gym_pusht
env = gym.make("gym_pusht/PushT-v0", obs_type="environment_state_agent_pos")
u = env.unwrapped
out = []
def rec(obs):
    b = u.block
    out.append({"state": [*map(float, u.agent.position), *map(float, b.position), float(b.angle % (2*np.pi))],
                "agent_pos": obs["agent_pos"].tolist(),
                "environment_state": obs["environment_state"].tolist()})
for st, act in [([256,400,256,300,0.0],[256,290]),([100.5,200.25,300.0,150.0,1.2345],[330,170]),([420,60,180.5,333.3,5.5],[160,340])]:
    obs,_ = env.reset(options={"reset_to_state": st})
    rec(obs)
    for _ in range(5):
        obs, *_ = env.step(np.array(act, dtype=np.float64))
    rec(obs)
print(json.dumps({"source": "gym-pusht 0.1.8, pymunk 6.11.1, obs_type=environment_state_agent_pos; state = [agent x, agent y, block origin x, block origin y, block angle mod 2pi] as the env holds it", "cases": out}, indent=1))
