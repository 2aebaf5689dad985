"""What the city's separate parties hold in common, and nothing else: the simulated clock
every process keeps (`clock`), the WeChat Pay v3 signatures the mall and the payment sandbox
exchange (`wechatpay`), and the masking of personal data that every log and report applies
(`masking`).

The mall, the payment sandbox, the gray router, the simulator and the load client each
import these from here rather than from one another, so a load worker or the payer imports
no part of the mall."""
