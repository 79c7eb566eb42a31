"""``python -m jupyter_agent.kernel -f CONNECTION_FILE``: start the agent kernel (its kernelspec does)."""

from ipykernel.kernelapp import IPKernelApp

from jupyter_agent.kernel.kernel import AgentKernel

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=AgentKernel)
